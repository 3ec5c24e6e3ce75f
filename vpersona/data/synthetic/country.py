"""One synthetic country: its respondents' latent factors, answers, demographics and weights."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from vpersona.core.seeds import rng as seeded_rng
from vpersona.data.catalog import Catalog, Item
from vpersona.data.wvs import INDEX_COMPONENTS, autonomy_index, postmaterialism_index
from vpersona.data.synthetic.assign import (_grouped_assign, _latent, _max_entropy_table, _missing_codes,
                                            _rank_assign)
from vpersona.data.synthetic.model import (AGE_LOADINGS, AGE_RANGE, AGE_SHAPE, MISSING_SHARED, NOMINAL_AXES, NOT_ASKED,
                                           OTHER, RURAL_LOADINGS, URBAN_SHARE, WEIGHT_SD, _content_cached,
                                           _loadings_cached, _on_axis, real_marginals)


# --------------------------------------------------------------------------- one country

class _Country:
    """Draws one country's respondents; every item gets its own stream from (seed, country, item)."""

    def __init__(self, iso3: str, n: int, seed: int, catalog: Catalog):
        self.iso3, self.n, self.seed, self.catalog = iso3, n, seed, catalog
        self.marginals = real_marginals(iso3, catalog)
        self.loadings = _loadings_cached(catalog)
        self.content = _content_cached(catalog)
        rng = self.rng("respondents")
        self.factors = rng.standard_normal((n, 2))
        w = np.exp(WEIGHT_SD * rng.standard_normal(n))
        self.weights = np.round(w / w.mean(), 6)
        self.propensity = MISSING_SHARED * rng.standard_normal(n)
        # content factors (own stream, so F1, F2, weights and propensity are as without them)
        content = self.rng("content factors").standard_normal((n, self.content.shape[1]))
        self.all_factors = np.hstack([self.factors, content])

    def rng(self, key: str) -> np.random.Generator:
        return seeded_rng(self.seed, _code_number(self.iso3), _code_number(key))

    def loading_vector(self, code: str) -> np.ndarray:
        """Loadings of ``code`` on (F1, F2, content factors...), the columns of ``all_factors``."""
        iw = self.loadings.loc[code, ["load_trad", "load_surv"]].to_numpy(float)
        content = self.content.loc[code].to_numpy(float) if code in self.content.index \
            else np.zeros(self.content.shape[1])
        return np.concatenate([iw, content])

    def item(self, item: Item) -> np.ndarray:
        m = self.marginals.get(item.code)
        if m is None:
            return np.full(self.n, NOT_ASKED)
        rng = self.rng(item.code)
        noise, tiebreak, miss_noise = rng.standard_normal(self.n), rng.random(self.n), rng.standard_normal(self.n)
        missing = _missing_codes(m.counts(self.n), self.propensity + miss_noise, rng)
        valid = missing == 0
        latent = _latent(self.all_factors[valid], self.loading_vector(item.code), noise[valid])
        if item.code in NOMINAL_AXES:
            group = np.isin(item.codes, NOMINAL_AXES[item.code]).astype(int)
        elif _on_axis(item):
            group = np.arange(len(item.codes))
        else:
            group = np.zeros(len(item.codes), dtype=int)
        cell = _grouped_assign(latent, tiebreak[valid], self.weights[valid], m.shares, group)
        out = missing.copy()
        out[valid] = np.asarray(item.codes)[cell]
        return out

    def battery(self, derived: Item) -> dict[str, np.ndarray]:
        """Components of a derived index drawn jointly, and the index computed from them."""
        parts = INDEX_COMPONENTS[derived.derived]
        if any(p not in self.marginals for p in parts):
            return {c: np.full(self.n, NOT_ASKED) for c in (*parts, derived.code)}
        part_items = [self.catalog[p] for p in parts]
        cells = np.array([c for c in itertools.product(*(i.codes for i in part_items))
                          if derived.derived != "postmaterialism" or c[0] != c[1]])
        index = _index(derived, cells)
        group = np.searchsorted(derived.codes, index)
        partitions, targets = [], []
        if derived.code in self.marginals:
            partitions.append(group)
            targets.append(self.marginals[derived.code].shares)
        for j, it in enumerate(part_items):
            partitions.append(np.searchsorted(it.codes, cells[:, j]))
            targets.append(self.marginals[it.code].shares)
        cell_shares = _max_entropy_table(partitions, targets)

        rng = self.rng(derived.code)
        noise, tiebreak, shared = rng.standard_normal(self.n), rng.random(self.n), rng.standard_normal(self.n)
        missing = np.column_stack([_missing_codes(self.marginals[p].counts(self.n), self.propensity + shared, rng)
                                   for p in parts])
        latent = _latent(self.all_factors, self.loading_vector(derived.code), noise)
        answers = np.zeros((self.n, len(parts)), dtype=int)
        patterns = missing == 0
        for pattern in np.unique(patterns, axis=0):
            if not pattern.any():
                continue
            rows = np.flatnonzero((patterns == pattern).all(axis=1))
            cell = _grouped_assign(latent[rows], tiebreak[rows], self.weights[rows], cell_shares, group)
            answers[rows] = cells[cell]
        answers = np.where(patterns, answers, missing)
        out = {p: answers[:, j] for j, p in enumerate(parts)}
        all_valid = patterns.all(axis=1)
        idx = np.full(self.n, OTHER)
        idx[all_valid] = _index(derived, answers[all_valid])
        out[derived.code] = idx
        return out

    def age(self) -> np.ndarray:
        rng = self.rng("Q262")
        ages = np.arange(AGE_RANGE[0], AGE_RANGE[1] + 1)
        knots, density = zip(*AGE_SHAPE)
        shares = np.interp(ages, knots, density)
        latent = _latent(self.factors, AGE_LOADINGS, rng.standard_normal(self.n))
        # ranking by minus the latent: older respondents have lower (more traditional) latent values
        return ages[_rank_assign(-latent, self.weights, shares / shares.sum())]

    def urban_rural(self) -> np.ndarray:
        rng = self.rng("H_URBRURAL")
        latent = _latent(self.factors, RURAL_LOADINGS, rng.standard_normal(self.n))
        return np.array([1, 2])[_rank_assign(latent, self.weights, np.array([URBAN_SHARE, 1 - URBAN_SHARE]))]

    def frame(self, columns: list[str], serial0: int) -> pd.DataFrame:
        data = {"B_COUNTRY_ALPHA": np.full(self.n, self.iso3),
                "D_INTERVIEW": serial0 + np.arange(1, self.n + 1),
                "W_WEIGHT": self.weights,
                "S018": np.round(self.weights * 1000.0 / self.n, 6)}
        for code in columns:
            if code in data:
                continue
            item = self.catalog[code]
            if code == "Q262":
                data[code] = self.age()
            elif code == "H_URBRURAL":
                data[code] = self.urban_rural()
            elif item.derived in INDEX_COMPONENTS or _component_of(code, self.catalog):
                derived = item if item.derived in INDEX_COMPONENTS else _component_of(code, self.catalog)
                data.update({k: v for k, v in self.battery(derived).items() if k in columns})
            else:
                data[code] = self.item(item)
        return pd.DataFrame({c: data[c] for c in ["B_COUNTRY_ALPHA", "D_INTERVIEW", "W_WEIGHT", "S018", *columns]})


def _index(derived: Item, cells: np.ndarray) -> np.ndarray:
    fn = postmaterialism_index if derived.derived == "postmaterialism" else autonomy_index
    return fn(*(cells[:, j] for j in range(cells.shape[1]))).to_numpy().astype(int)


def _component_of(code: str, catalog: Catalog) -> Item | None:
    for item in catalog:
        if item.derived in INDEX_COMPONENTS and code in INDEX_COMPONENTS[item.derived]:
            return item
    return None


def _code_number(text: str) -> int:
    """A stable integer for a country or item code (seeds and interview ids)."""
    return int.from_bytes(text.encode("ascii"), "big")
