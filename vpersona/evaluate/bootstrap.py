"""Cluster bootstrap intervals for means over (country, item) cells.

A score table has one row per (country, item) cell, but the cells are not independent: the same
item is hard in every country, and a country is hard on every item. An interval that claims to
generalise to other *items* must resample items (with all their cells), one that claims to
generalise to other *countries* must resample countries. The ``unit`` of every interval says
which (see ``docs/method.md``, "Bootstrap"):

- ``"items"``: resample items with replacement, keep all their cells;
- ``"countries"``: resample countries with replacement, keep all their cells;
- ``"both"``: two-way: resample items and countries independently, keep the cells that are in
  both resamples (each cell counted a_i * b_c times for item count a_i and country count b_c);
- ``"cells"``: resample cells as if independent. Too narrow whenever items or countries differ;
  kept only to show that (``benchmarks/bench_coverage.py``).

The statistic is always the mean over cells (NaN values left out), so with unequal cluster
sizes it is the ratio (sum of values) / (number of values) of the resampled clusters.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from vpersona.core.seeds import derive_seed, rng

UNITS = ("items", "countries", "both", "cells")
_COLUMN = {"items": "item", "countries": "country"}


def check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ValueError(f"unknown bootstrap unit {unit!r}; expected one of {list(UNITS)}")
    return unit


def n_units(cells: pd.DataFrame, unit: str) -> int:
    """Number of resampled units (items, countries, items x countries present, or cells)."""
    check_unit(unit)
    if unit == "cells":
        return len(cells)
    if unit == "both":
        return cells["item"].nunique() * cells["country"].nunique()
    return cells[_COLUMN[unit]].nunique()


@lru_cache(maxsize=32)
def _counts(seed: int, n: int, n_boot: int, part: str = "") -> np.ndarray:
    """(n_boot, n): how often each of n units is drawn in each resample.

    Depends only on (seed, n, part), so groups with the same number of units share one resampling
    (computed once): a group's interval does not depend on which other groups exist."""
    idx = rng(seed, n, part).integers(0, n, size=(n_boot, n))
    counts = np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n)
    out = counts.reshape(n_boot, n).astype(float)
    out.flags.writeable = False
    return out


def _percentile_interval(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 100 * (1 - level) / 2
    with np.errstate(invalid="ignore"):
        q = np.nanpercentile(boot, [alpha, 100 - alpha], axis=-1)
    return q[0], q[1]


def _one_way(S: np.ndarray, n: np.ndarray, n_boot: int, level: float, seed):
    """Percentile bootstrap over clusters; rows of (S, n) are metrics, columns clusters (value sums, counts).

    Hand-written as one matrix product of resample counts with the cluster sums: the same
    percentile bootstrap as ``scipy.stats.bootstrap((S, n), ratio, paired=True,
    method="percentile")`` (checked against it in tests/evaluate/test_bootstrap.py), but scipy
    materialises every resample (resamples x clusters x metrics), about 0.1 s per group here, which
    is minutes for a paper-scale table of 64 countries x 8 methods."""
    if S.shape[-1] < 2:  # one cluster: no variation to resample
        nan = np.full(S.shape[:-1], np.nan)
        return nan, nan
    C = _counts(seed, S.shape[-1], n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (S @ C.T) / (n @ C.T)  # (metrics, boot)
    return _percentile_interval(boot, level)


def _two_way(V: np.ndarray, M: np.ndarray, n_boot: int, level: float, seed):
    """Items and countries resampled independently; scipy.stats.bootstrap draws one index per
    resample (paired samples share it), so it cannot express a crossed design at all.

    V: (metrics, items, countries) values with 0 where absent; M: the matching 0/1 presence.
    """
    _, n_i, n_c = V.shape
    if n_i < 2 or n_c < 2:
        nan = np.full(V.shape[0], np.nan)
        return nan, nan
    A = _counts(seed, n_i, n_boot, "items")  # (boot, items)
    B = _counts(seed, n_c, n_boot, "countries")  # (boot, countries)
    num = np.einsum("bi,mic,bc->mb", A, V, B)
    den = np.einsum("bi,mic,bc->mb", A, M, B)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = num / den
    return _percentile_interval(boot, level)


def mean_interval(cells: pd.DataFrame, columns, *, unit: str = "items", n_boot: int = 1000,
                  level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean over cells of each column and its cluster-bootstrap interval resampling ``unit``.

    ``cells`` has columns ``country``, ``item`` and ``columns`` (one row per cell). Returns a frame
    indexed by column with ``mean``, ``lo``, ``hi`` (percentile interval). NaN values are left
    out of the mean. Intervals are NaN when there are fewer than two units to resample.
    """
    check_unit(unit)
    columns = list(columns)
    V = cells[columns].to_numpy(dtype=float).T  # (metrics, cells)
    ok = ~np.isnan(V)
    Vz = np.where(ok, V, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = Vz.sum(axis=1) / ok.sum(axis=1)
    with threadpool_limits(1):  # small products: BLAS threads contending on a busy machine cost ~7x (measured)
        lo, hi = _intervals(cells, columns, Vz, ok, unit, n_boot, level, seed)
    return pd.DataFrame({"mean": mean, "lo": lo, "hi": hi}, index=pd.Index(columns, name="column"))


def _intervals(cells, columns, Vz, ok, unit, n_boot, level, seed):
    """(lo, hi) per column for :func:`mean_interval`."""
    if n_boot == 0 or len(cells) == 0:
        lo = hi = np.full(len(columns), np.nan)
    elif unit == "both":
        items, i = np.unique(cells["item"].to_numpy(), return_inverse=True)
        countries, c = np.unique(cells["country"].to_numpy(), return_inverse=True)
        Vic = np.zeros((len(columns), len(items), len(countries)))
        Mic = np.zeros_like(Vic)
        np.add.at(Vic, (slice(None), i, c), Vz)
        np.add.at(Mic, (slice(None), i, c), ok.astype(float))
        lo, hi = _two_way(Vic, Mic, n_boot, level, seed)
    else:
        if unit == "cells":
            S, n = Vz, ok.astype(float)
        else:
            _, g = np.unique(cells[_COLUMN[unit]].to_numpy(), return_inverse=True)
            S = np.zeros((len(columns), g.max() + 1))
            n = np.zeros_like(S)
            np.add.at(S, (slice(None), g), Vz)
            np.add.at(n, (slice(None), g), ok.astype(float))
        lo, hi = np.full(len(columns), np.nan), np.full(len(columns), np.nan)
        has = n.sum(axis=1) > 0
        keep = n > 0  # per metric, the clusters that have a value
        patterns = {}
        for m in np.flatnonzero(has):  # metrics with the same clusters share one product
            patterns.setdefault(keep[m].tobytes(), []).append(m)
        for ms in patterns.values():
            cols = keep[ms[0]]
            lo[ms], hi[ms] = _one_way(S[np.ix_(ms, cols)], n[np.ix_(ms, cols)], n_boot, level, seed)
    return lo, hi


def simulated_cells(gen: np.random.Generator, n_items: int, n_countries: int, *, mean: float = 0.0,
                    item_sd: float = 1.0, country_sd: float = 0.0, cell_sd: float = 1.0) -> pd.DataFrame:
    """A crossed table ``value = mean + item effect + country effect + cell noise`` (normal effects),
    whose population mean is ``mean``: the known truth of the coverage check."""
    a = gen.normal(0, item_sd, n_items)[:, None]
    b = gen.normal(0, country_sd, n_countries)[None, :]
    v = mean + a + b + gen.normal(0, cell_sd, (n_items, n_countries))
    items, countries = np.meshgrid(np.arange(n_items), np.arange(n_countries), indexing="ij")
    return pd.DataFrame({"item": items.ravel(), "country": countries.ravel(), "value": v.ravel()})


def coverage(n_datasets: int, unit: str, *, seed: int = 0, n_boot: int = 1000, level: float = 0.95,
             **design) -> float:
    """Share of ``n_datasets`` simulated tables (:func:`simulated_cells`, keyword ``design``) whose
    ``unit`` interval covers the true mean."""
    gen = rng(seed)
    mean = design.pop("mean", 0.0)
    hits = 0
    for k in range(n_datasets):
        ci = mean_interval(simulated_cells(gen, mean=mean, **design), ["value"], unit=unit, n_boot=n_boot,
                           level=level, seed=derive_seed(seed, k)).loc["value"]
        hits += ci["lo"] <= mean <= ci["hi"]
    return hits / n_datasets
