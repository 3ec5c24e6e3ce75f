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

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

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


def _ratio(S, n, axis=-1):
    with np.errstate(invalid="ignore", divide="ignore"):
        return S.sum(axis=axis) / n.sum(axis=axis)


def _one_way(S: np.ndarray, n: np.ndarray, n_boot: int, level: float, seed, method: str):
    """scipy's paired bootstrap over clusters: rows of (S, n) are metrics, columns clusters."""
    if S.shape[-1] < 2:  # one cluster: no variation to resample
        nan = np.full(S.shape[:-1], np.nan)
        return nan, nan
    res = bootstrap((S, n), _ratio, n_resamples=n_boot, paired=True, vectorized=True, axis=-1,
                    confidence_level=level, method=method, rng=np.random.default_rng(seed))
    return res.confidence_interval.low, res.confidence_interval.high


def _two_way(V: np.ndarray, M: np.ndarray, n_boot: int, level: float, seed):
    """Hand-written: scipy.stats.bootstrap draws one index per resample (paired samples share it),
    so it cannot resample the rows and the columns of a crossed design independently.

    V: (metrics, items, countries) values with 0 where absent; M: the matching 0/1 presence.
    """
    _, n_i, n_c = V.shape
    if n_i < 2 or n_c < 2:
        nan = np.full(V.shape[0], np.nan)
        return nan, nan
    rng = np.random.default_rng(seed)
    A = _counts(rng, n_i, n_boot)  # (boot, items)
    B = _counts(rng, n_c, n_boot)  # (boot, countries)
    num = np.einsum("bi,mic,bc->mb", A, V, B)
    den = np.einsum("bi,mic,bc->mb", A, M, B)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = num / den
    alpha = (1 - level) / 2
    q = np.nanpercentile(boot, [100 * alpha, 100 * (1 - alpha)], axis=1)
    return q[0], q[1]


def _counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    idx = rng.integers(0, n, size=(n_boot, n))
    return np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)


def mean_interval(cells: pd.DataFrame, columns, *, unit: str = "items", n_boot: int = 1000,
                  level: float = 0.95, seed: int = 0, method: str = "percentile") -> pd.DataFrame:
    """Mean over cells of each column and its cluster-bootstrap interval resampling ``unit``.

    ``cells`` has columns ``country``, ``item`` and ``columns`` (one row per cell). Returns a frame
    indexed by column with ``mean``, ``lo``, ``hi``. ``method`` is scipy's ("percentile", "BCa",
    "basic") for the one-way units; the two-way unit is always percentile. NaN values are left
    out of the mean. Intervals are NaN when there are fewer than two units to resample.
    """
    check_unit(unit)
    columns = list(columns)
    V = cells[columns].to_numpy(dtype=float).T  # (metrics, cells)
    ok = ~np.isnan(V)
    Vz = np.where(ok, V, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = Vz.sum(axis=1) / ok.sum(axis=1)
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
        for m in np.flatnonzero(has):  # metrics with the same clusters share one scipy call
            patterns.setdefault(keep[m].tobytes(), []).append(m)
        for ms in patterns.values():
            cols = keep[ms[0]]
            lo[ms], hi[ms] = _one_way(S[np.ix_(ms, cols)], n[np.ix_(ms, cols)], n_boot, level, seed, method)
    return pd.DataFrame({"mean": mean, "lo": lo, "hi": hi}, index=pd.Index(columns, name="column"))


def simulated_cells(rng: np.random.Generator, n_items: int, n_countries: int, *, mean: float = 0.0,
                    item_sd: float = 1.0, country_sd: float = 0.0, cell_sd: float = 1.0) -> pd.DataFrame:
    """A crossed table ``value = mean + item effect + country effect + cell noise`` (normal effects),
    whose population mean is ``mean``: the known truth of the coverage check."""
    a = rng.normal(0, item_sd, n_items)[:, None]
    b = rng.normal(0, country_sd, n_countries)[None, :]
    v = mean + a + b + rng.normal(0, cell_sd, (n_items, n_countries))
    items, countries = np.meshgrid(np.arange(n_items), np.arange(n_countries), indexing="ij")
    return pd.DataFrame({"item": items.ravel(), "country": countries.ravel(), "value": v.ravel()})


def coverage(n_datasets: int, unit: str, *, seed: int = 0, n_boot: int = 1000, level: float = 0.95,
             **design) -> float:
    """Share of ``n_datasets`` simulated tables (:func:`simulated_cells`, keyword ``design``) whose
    ``unit`` interval covers the true mean."""
    rng = np.random.default_rng(seed)
    mean = design.pop("mean", 0.0)
    hits = 0
    for k in range(n_datasets):
        ci = mean_interval(simulated_cells(rng, mean=mean, **design), ["value"], unit=unit, n_boot=n_boot,
                           level=level, seed=[seed, k]).loc["value"]
        hits += ci["lo"] <= mean <= ci["hi"]
    return hits / n_datasets
