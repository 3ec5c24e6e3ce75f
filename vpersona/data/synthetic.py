"""Generate a SYNTHETIC respondent-level sample in the WVS Wave 7 layout.

The rows are NOT real respondents. They are drawn from a documented latent model (a Gaussian
copula on the two Inglehart-Welzel factors plus content factors) so that

* per country, every item's W_WEIGHT-weighted answer shares reproduce the real WVS-7 weighted
  marginals in ``vpersona/resources/wvs7_marginals.csv.gz``, and don't know / no answer / not asked
  codes appear at the real rates;
* within a country, answers are linked through two latent factors, F1 traditional ->
  secular-rational and F2 survival -> self-expression, with item loadings derived from how each
  item's country mean correlates with the published IW map positions across countries, shrunk by
  ``SHRINK`` because individual-level links are weaker than ecological ones;
* items of the same content (religion, justifiability, trust, gender roles, ...) also share
  content factors, and every declared leakage proxy pair (catalog ``proxies``) shares one more
  factor, with loadings that are stated assumptions in ``vpersona/resources/synthetic_factors.yaml``
  (aimed at typical published within-country correlations, not estimated from respondents);
* the components of the two IW indices (Q154/Q155 -> Y002, Q8/Q14/Q15/Q17 -> Y003) are drawn
  jointly, so the indices are computed from them and stay consistent.

Age (Q262) and urban/rural (H_URBRURAL) have no real marginals: they are invented from fixed
assumptions (``AGE_SHAPE``, ``URBAN_SHARE``). The full model is in
``vpersona/resources/SYNTHETIC_SAMPLE.md``. Regenerate the bundled file with::

    python -m vpersona.data.synthetic --n 1000 --seed 2026 --out vpersona/resources/wvs7_SYNTHETIC_sample.csv.gz
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
from functools import cache
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vpersona.core.seeds import rng as seeded_rng
from vpersona.data.catalog import Catalog, Item, load_catalog
from vpersona.core.package_data import package_table, resource_yaml
from vpersona.data.wvs import INDEX_COMPONENTS, autonomy_index, postmaterialism_index

# The countries of the bundled sample: every IW cultural zone of vpersona/resources/countries.csv.
DEFAULT_COUNTRIES = ("AUS", "NZL", "DEU", "CZE", "GRC", "RUS", "UKR", "JPN", "KOR",
                     "ARG", "BRA", "MEX", "EGY", "IRN", "NGA", "PAK", "PHL", "THA")
DEFAULT_OUT = "vpersona/resources/wvs7_SYNTHETIC_sample.csv.gz"

# Individual-level loading = SHRINK x cross-country correlation of the item's country mean with
# the published IW position (assumption: within-country links are about half the ecological ones).
SHRINK = 0.5
# Nominal items placed on the latent axis by a split of their codes: the listed "high" codes sit
# at the high end, the others at the low end; within each end codes are assigned at random.
# Q152 aims of the country: 3 "more say", 4 "more beautiful cities" are Inglehart's
# post-materialist aims; Q289 religion: 0 "no religious denomination".
NOMINAL_AXES = {"Q152": (3, 4), "Q289": (0,)}
# Invented items (no real marginals): loadings on (F1 secular, F2 self-expression) are assumptions.
AGE_LOADINGS = (-0.2, -0.1)        # older -> more traditional, slightly more survival-oriented
RURAL_LOADINGS = (-0.1, -0.1)      # H_URBRURAL code 2 (rural) -> a little more traditional
URBAN_SHARE = 0.6                  # H_URBRURAL code 1 (urban)
AGE_RANGE = (18, 85)
AGE_SHAPE = ((18, 1.0), (60, 1.0), (85, 0.25))   # relative density, linear between knots
WEIGHT_SD = 0.3                    # W_WEIGHT ~ lognormal(0, WEIGHT_SD), rescaled to mean 1
MISSING_SHARED = 1.0               # sd of the respondent-level non-response propensity
DK, NA, NOT_ASKED, OTHER = -1, -2, -4, -5
INVENTED = ("Q262", "H_URBRURAL")
CONTENT_FACTORS_FILE = "synthetic_factors.yaml"
MAX_COMMUNALITY = 0.95             # sum of squared loadings of an item must stay below this
_COMPONENTS = {part: index for index, parts in (("Y003", INDEX_COMPONENTS["autonomy"]),
                                                 ("Y002", INDEX_COMPONENTS["postmaterialism"]))
               for part in parts}


@dataclass(frozen=True)
class Marginal:
    """Real marginal of one item in one country: shares over the catalog codes and missing counts."""

    shares: np.ndarray
    n_total: int
    n_valid: int
    n_dk: int
    n_na: int

    @property
    def n_other(self) -> int:
        return self.n_total - self.n_valid - self.n_dk - self.n_na

    def counts(self, n: int) -> dict[int, int]:
        """Respondents per kind (0 valid, -1, -2, -5) out of ``n``, by largest-remainder rounding."""
        kinds = (0, DK, NA, OTHER)
        raw = np.array([self.n_valid, self.n_dk, self.n_na, self.n_other], float) * n / self.n_total
        out = np.floor(raw).astype(int)
        out[np.argsort(-(raw - out), kind="stable")[: n - out.sum()]] += 1
        return dict(zip(kinds, out.tolist()))


# --------------------------------------------------------------------------- package data

def _marginals_table() -> pd.DataFrame:
    return package_table("wvs7_marginals.csv.gz")


def available_countries() -> list[str]:
    """Countries the generator can produce (those with real marginals)."""
    return sorted(_marginals_table()["country"].unique())


def real_marginals(country: str, catalog: Catalog | None = None) -> dict[str, Marginal]:
    """The real marginals of ``country`` per catalog item that has any (items not asked are absent).

    Shares are renormalised over the catalog's answer options; answers with other codes (Q254
    code 5, "I am not [nationality]") are counted with the other missing answers (-5).
    """
    catalog = catalog if catalog is not None else load_catalog()
    table = _marginals_table()
    out = {}
    for code, rows in table[table["country"] == country].groupby("item", sort=False):
        if code not in catalog:
            continue
        item = catalog[code]
        first = rows.iloc[0]
        # codes that are not answer options (Q254 code 5 "I am not [nationality]") count as missing (-5)
        n_valid = int(first["n_valid"]) - int(rows.loc[~rows["code"].isin(item.codes), "n_code"].sum())
        if n_valid <= 0 or int(first["n_notasked"]) == int(first["n_total"]):
            continue
        shares = rows.set_index("code")["share_w"].reindex(item.codes, fill_value=0.0).to_numpy(float)
        out[code] = Marginal(shares / shares.sum(), int(first["n_total"]) - int(first["n_notasked"]),
                             n_valid, int(first["n_dk"]), int(first["n_na"]))
    return out


# --------------------------------------------------------------------------- loadings

def _axis_position(item: Item, shares: np.ndarray) -> float:
    """Where a country's answer distribution of ``item`` sits on the item's latent axis."""
    if item.code in NOMINAL_AXES:
        return float(shares[np.isin(item.codes, NOMINAL_AXES[item.code])].sum())
    return float(np.arange(len(shares)) @ shares)


def _on_axis(item: Item) -> bool:
    return item.scale in ("ordinal", "binary") or item.code in NOMINAL_AXES


@cache
def _loadings_cached(catalog: Catalog) -> pd.DataFrame:
    positions = package_table("iw_map_positions.csv").set_index("iso3")
    marginals = _marginals_table()
    rows = []
    for item in catalog:
        if item.code in INVENTED:
            load = AGE_LOADINGS if item.code == "Q262" else RURAL_LOADINGS
            rows.append((item.code, "assumed", np.nan, np.nan, np.nan, np.nan, *load, 0))
            continue
        sub = marginals[(marginals["item"] == item.code) & marginals["country"].isin(positions.index)]
        if sub.empty:
            continue
        if not _on_axis(item):
            if item.code in _COMPONENTS:
                rows.append((item.code, f"drawn jointly with {_COMPONENTS[item.code]}, loads through it",
                             *[np.nan] * 6, 0))
            else:
                rows.append((item.code, "none (nominal, independent of F1 and F2)", *[np.nan] * 4, 0.0, 0.0, 0))
            continue
        pos = {c: _axis_position(item, g.set_index("code")["share_w"].reindex(item.codes, fill_value=0)
                                 .to_numpy(float)) for c, g in sub.groupby("country")}
        x = pd.Series(pos)
        dims = positions.loc[x.index, ["traditional_secular", "survival_selfexpression"]].to_numpy(float)
        r = np.array([np.corrcoef(x, dims[:, j])[0, 1] for j in range(2)])
        # the published dimensions correlate across countries; within a country F1 and F2 are
        # independent, so the loadings are the pattern coefficients Phi^-1 r, not the correlations r
        beta = np.linalg.solve(np.corrcoef(dims, rowvar=False), r)
        axis = "share of codes " + ",".join(map(str, NOMINAL_AXES[item.code])) \
            if item.code in NOMINAL_AXES else "mean code"
        if item.code in _COMPONENTS:
            axis += f" (drawn jointly with {_COMPONENTS[item.code]}, loads through it)"
            rows.append((item.code, axis, *r, *beta, np.nan, np.nan, len(x)))
        else:
            rows.append((item.code, axis, *r, *beta, *(SHRINK * beta), len(x)))
    table = pd.DataFrame(rows, columns=["item", "axis", "r_trad", "r_surv", "beta_trad", "beta_surv",
                                        "load_trad", "load_surv", "n_countries"]).set_index("item")
    return table


def item_loadings(catalog: Catalog | None = None) -> pd.DataFrame:
    """Per item: ecological correlations with the published IW positions and the latent loadings.

    Columns ``axis`` (the country-level position of the item that is correlated), ``r_trad``/
    ``r_surv`` (Pearson correlation across countries of that position with the published
    ``traditional_secular``/``survival_selfexpression``), ``beta_trad``/``beta_surv`` (pattern
    coefficients Phi^-1 r, Phi = the 2x2 correlation of the two published dimensions over the same
    countries), ``load_trad``/``load_surv`` (= ``SHRINK`` x beta; the stated assumption for the
    invented items; NaN for components, which are drawn jointly with their index Y002/Y003 and
    load through it; 0 for nominal items without an axis), ``n_countries``.
    """
    return _loadings_cached(catalog if catalog is not None else load_catalog()).copy()


@cache
def _content_cached(catalog: Catalog) -> pd.DataFrame:
    spec = resource_yaml(CONTENT_FACTORS_FILE)
    iw = _loadings_cached(catalog)
    loads: dict[tuple[str, str], float] = {}
    for factor, body in spec["factors"].items():
        for code, value in body["loadings"].items():
            if code not in catalog or code in _COMPONENTS or code in INVENTED or not _on_axis(catalog[code]):
                raise ValueError(f"{CONTENT_FACTORS_FILE}: factor {factor!r} lists {code!r}, expected an "
                                 f"ordinal/binary catalog item, an index, or one of {sorted(NOMINAL_AXES)}")
            loads[(code, factor)] = float(value)
    proxy = float(spec["proxy_loading"])
    for item in catalog:
        for value_code in item.proxies:
            r_value = iw.loc[value_code, ["r_trad", "r_surv"]].to_numpy(float)
            r_proxy = iw.loc[item.code, ["r_trad", "r_surv"]].to_numpy(float)
            sign = np.sign(r_value @ r_proxy)
            if not np.isfinite(sign) or sign == 0:
                raise ValueError(f"cannot derive the sign of the proxy link {item.code}-{value_code}: "
                                 f"expected both items to have ecological IW correlations")
            loads[(value_code, f"proxy:{value_code}")] = proxy
            loads[(item.code, f"proxy:{value_code}")] = float(sign) * proxy
    table = pd.Series(loads).unstack(fill_value=0.0)
    factors = list(spec["factors"]) + sorted(f for f in table.columns if f.startswith("proxy:"))
    table = table[factors].reindex([i.code for i in catalog if i.code in table.index])
    iw_part = iw.loc[table.index, ["load_trad", "load_surv"]].fillna(0.0).to_numpy(float)
    communality = (iw_part ** 2).sum(axis=1) + (table.to_numpy() ** 2).sum(axis=1)
    if (communality >= MAX_COMMUNALITY).any():
        bad = table.index[communality >= MAX_COMMUNALITY].tolist()
        raise ValueError(f"{CONTENT_FACTORS_FILE}: the squared loadings of {bad} sum to "
                         f">= {MAX_COMMUNALITY} with their IW loadings; expected less (unique variance)")
    return table


def content_loadings(catalog: Catalog | None = None) -> pd.DataFrame:
    """Loadings of items on the content factors (one column per factor, 0 where an item does not load).

    Module and cluster factors come from ``vpersona/resources/synthetic_factors.yaml`` (stated
    assumptions); then one ``proxy:<value item>`` column per value item with declared proxies,
    loading ``proxy_loading`` on the value item and +-``proxy_loading`` on each proxy, the sign
    being that of the dot product of the two items' ecological IW correlations (``r_trad``,
    ``r_surv`` of :func:`item_loadings`). Items without content factors are absent.
    """
    return _content_cached(catalog if catalog is not None else load_catalog()).copy()


# --------------------------------------------------------------------------- assignment

def _rank_assign(latent: np.ndarray, weights: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Category index per respondent so that weighted shares follow ``shares`` in latent order.

    Respondents are sorted by ``latent``; the one whose cumulative weight (at its midpoint) falls
    in [S_{k-1}, S_k) of the cumulative target shares gets category k. Then respondents at the
    category borders are moved one at a time while that lowers the Jensen-Shannon divergence to
    ``shares`` (so an answer rarer than one respondent still gets its nearest respondent); the
    latent order is kept throughout.
    """
    order = np.argsort(latent, kind="stable")
    w = weights[order]
    cum = np.cumsum(w)
    mid = (cum - w / 2) / cum[-1]
    target = shares / shares.sum()
    ranked = np.searchsorted(np.cumsum(target)[:-1], mid, side="right")
    ranked = _polish(ranked, w / cum[-1], target)
    out = np.empty(len(latent), dtype=int)
    out[order] = ranked
    return out


def _js_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-cell terms of the Jensen-Shannon divergence (base 2) of p and q."""
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        tp = np.where(p > 0, p * np.log2(p / m), 0.0)
        tq = np.where(q > 0, q * np.log2(q / m), 0.0)
    return (tp + tq) / 2


def _polish(ranked: np.ndarray, w: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Improve a sorted assignment (``w`` sums to 1) while its JSD to ``target`` drops: border
    moves first, then, for an answer left empty, a shift of one respondent from another answer
    along the chain of answers in between (each keeps its count; only border respondents move)."""
    mass = np.bincount(ranked, weights=w, minlength=len(target))
    for _ in range(len(target) + 1):
        ranked, mass = _border_moves(ranked, w, target, mass)
        changed = False
        for k in np.flatnonzero((target > 0) & (np.bincount(ranked, minlength=len(target)) == 0)):
            current = _js_terms(mass, target).sum()
            options = [_chain(ranked, w, mass, k, d) for d in range(len(target)) if d != k and (ranked == d).any()]
            options = [(_js_terms(m, target).sum(), r, m) for r, m in options]
            if options:
                js, r, m = min(options, key=lambda o: o[0])
                if js < current - 1e-12:
                    ranked, mass, changed = r, m, True
        if not changed:
            break
    return ranked



def _chain(ranked, w, mass, k: int, d: int):
    """Move one respondent into answer ``k`` from answer ``d`` through the answers in between."""
    new = ranked.copy()
    if d > k:
        lo, hi = np.searchsorted(ranked, k, side="right"), np.searchsorted(ranked, d, side="right")
        new[lo:hi] = np.concatenate([[k], ranked[lo:hi - 1]])
    else:
        lo, hi = np.searchsorted(ranked, d, side="left"), np.searchsorted(ranked, k, side="left")
        new[lo:hi] = np.concatenate([ranked[lo + 1:hi], [k]])
    moved = np.flatnonzero(new != ranked)
    m = mass.copy()
    np.subtract.at(m, ranked[moved], w[moved])
    np.add.at(m, new[moved], w[moved])
    return new, m


def _border_moves(ranked, w, target, mass, max_moves: int = 1000):
    """Greedy single moves of border respondents into the neighbouring answer."""
    ks = np.arange(len(target))
    for _ in range(max_moves):
        below = np.searchsorted(ranked, ks, side="left") - 1      # last respondent under answer k
        above = np.searchsorted(ranked, ks, side="right")         # first respondent over answer k
        donor_pos = np.concatenate([below, above])
        receiver = np.concatenate([ks, ks])
        ok = (donor_pos >= 0) & (donor_pos < len(ranked))
        donor_pos, receiver = donor_pos[ok], receiver[ok]
        if donor_pos.size == 0:
            break
        donor, wj = ranked[donor_pos], w[donor_pos]
        gain = (_js_terms(mass[donor] - wj, target[donor]) + _js_terms(mass[receiver] + wj, target[receiver])
                - _js_terms(mass[donor], target[donor]) - _js_terms(mass[receiver], target[receiver]))
        best = int(np.argmin(gain))
        if gain[best] >= -1e-12:
            break
        j, k = donor_pos[best], receiver[best]
        mass[ranked[j]] -= w[j]
        mass[k] += w[j]
        ranked[j] = k
    return ranked, mass


def _grouped_assign(latent, tiebreak, weights, cell_shares, cell_group) -> np.ndarray:
    """Cell per respondent: groups in latent order, cells within a group by ``tiebreak`` order."""
    n_groups = int(cell_group.max()) + 1
    group_shares = np.bincount(cell_group, weights=cell_shares, minlength=n_groups)
    group = _rank_assign(latent, weights, group_shares)
    cell = np.empty(len(latent), dtype=int)
    for g in range(n_groups):
        members = np.flatnonzero(group == g)
        cells = np.flatnonzero(cell_group == g)
        if members.size == 0:
            continue
        within = _rank_assign(tiebreak[members], weights[members], cell_shares[cells])
        cell[members] = cells[within]
    return cell


def _max_entropy_table(partitions, targets, n_iter: int = 2000, tol: float = 1e-10) -> np.ndarray:
    """Cell shares with the given group sums for each partition of the cells (iterative
    proportional fitting from the uniform table; the last partition is matched exactly)."""
    p = np.full(len(partitions[0]), 1.0 / len(partitions[0]))
    for _ in range(n_iter):
        for part, target in zip(partitions, targets):
            s = np.bincount(part, weights=p, minlength=len(target))
            p = p * np.divide(target, s, out=np.zeros_like(target), where=s > 0)[part]
        gap = max(np.abs(np.bincount(part, weights=p, minlength=len(t)) - t).max()
                  for part, t in zip(partitions, targets))
        if gap < tol:
            break
    return p / p.sum()


def _missing_codes(counts: dict[int, int], propensity: np.ndarray, rng) -> np.ndarray:
    """0 for valid; the respondents with the highest propensity get the missing codes, kinds shuffled."""
    codes = np.zeros(len(propensity), dtype=int)
    kinds = np.repeat([DK, NA, OTHER], [counts[DK], counts[NA], counts[OTHER]])
    if kinds.size:
        chosen = np.argsort(-propensity, kind="stable")[: kinds.size]
        codes[chosen] = rng.permutation(kinds)
    return codes


def _latent(factors: np.ndarray, loadings, noise: np.ndarray) -> np.ndarray:
    l = np.asarray(loadings, float)
    return factors @ l + np.sqrt(max(1.0 - l @ l, 0.0)) * noise


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


# --------------------------------------------------------------------------- public API

def sample_columns(catalog: Catalog | None = None) -> list[str]:
    """Item columns of a generated sample, in catalog order: items with real marginals somewhere,
    the components and indices, and the two invented items (age Q262, urban/rural H_URBRURAL)."""
    catalog = catalog if catalog is not None else load_catalog()
    have = set(_marginals_table()["item"])
    return [i.code for i in catalog if i.code in have or i.code in INVENTED]


def generate_sample(countries, n_per_country: int = 1000, seed: int = 0, *,
                    catalog: Catalog | None = None) -> pd.DataFrame:
    """SYNTHETIC respondents in the official WVS-7 CSV layout, ``n_per_country`` per country.

    Columns: B_COUNTRY_ALPHA, D_INTERVIEW (unique ids), W_WEIGHT (mean 1 per country), S018
    (W_WEIGHT scaled to sum to 1000 per country), then one integer column per item of
    :func:`sample_columns` (valid answer code or WVS missing code -1, -2, -4 not asked, -5).
    The same (countries, n, seed) give identical rows; a country's rows do not depend on which
    other countries are generated.
    """
    catalog = catalog if catalog is not None else load_catalog()
    countries = [countries] if isinstance(countries, str) else list(countries)
    valid = available_countries()
    unknown = [c for c in countries if c not in valid]
    if unknown or not countries:
        raise ValueError(f"cannot generate countries {unknown or countries}: expected ISO alpha-3 codes "
                         f"of countries with real WVS-7 marginals: {', '.join(valid)}")
    repeated = sorted({c for c in countries if countries.count(c) > 1})
    if repeated:
        raise ValueError(f"countries listed more than once: {repeated}")
    if not isinstance(n_per_country, (int, np.integer)) or not 1 <= n_per_country < 10**6:
        raise ValueError(f"n_per_country must be an integer in 1..999999, got {n_per_country!r}")
    columns = sample_columns(catalog)
    frames = [_Country(c, int(n_per_country), int(seed), catalog).frame(columns, _code_number(c) * 10**6)
              for c in countries]
    return pd.concat(frames, ignore_index=True)


def write_sample(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as a gzip CSV whose bytes depend only on its content (gzip mtime 0)."""
    path = Path(path)
    text = frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vpersona.data.synthetic",
                                 description="Generate a SYNTHETIC WVS-7-format sample (not real respondents).")
    ap.add_argument("--countries", nargs="+", default=list(DEFAULT_COUNTRIES),
                    help="ISO alpha-3 codes (default: the bundled sample's 18 countries)")
    ap.add_argument("--n", type=int, default=1000, help="respondents per country")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output .csv.gz path")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    frame = generate_sample(args.countries, args.n, args.seed)
    path = write_sample(frame, args.out)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    print(f"SYNTHETIC sample: {len(frame)} rows, {frame['B_COUNTRY_ALPHA'].nunique()} countries, "
          f"{frame.shape[1]} columns -> {path} ({path.stat().st_size / 1e6:.2f} MB, sha256 {digest}..., "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
