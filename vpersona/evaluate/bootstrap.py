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

Three interval rules for the one-way units (``interval=``), chosen by
``benchmarks/bench_coverage.py`` (table and reasons in docs/method.md, "Intervals"):

- ``"studentized"`` (default): the bootstrap-t. Each resample of clusters gives
  t* = (mean* - mean) / SE*, with the cluster standard error (for unequal cluster sizes the
  linearised SE of the ratio, sqrt(k/(k-1) * sum_j (S_j - mean * n_j)^2) / sum_j n_j, which for
  equal sizes is sd(cluster means) / sqrt(k)); the interval is
  [mean - q(1-a/2) SE, mean - q(a/2) SE] with q the quantiles of t*. It covers ~95% with 8 items
  where the percentile bootstrap covers ~0.90 (its spread is the plug-in (k-1)/k of the variance,
  with normal rather than t tails), and keeps closer to 95% than "t" when a few items carry the
  effect (skewed item effects).
- ``"t"``: Student t on the cluster means, mean +/- t(k-1) SE (no resampling).
- ``"percentile"``: the percentile bootstrap (what the summary printed before); the only rule for
  ``"both"`` (a crossed design has no single cluster count to studentize over).

Each rule also gives a two-sided p-value of "the mean is 0" (``p``; NaN for the percentile
bootstrap), for the multiple-testing correction of the summary's primary claims.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from threadpoolctl import threadpool_limits

from vpersona.core.seeds import derive_seed, rng

UNITS = ("items", "countries", "both", "cells")
INTERVALS = ("studentized", "t", "percentile")
_COLUMN = {"items": "item", "countries": "country"}


def check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ValueError(f"unknown bootstrap unit {unit!r}; expected one of {list(UNITS)}")
    return unit


def check_interval(interval: str) -> str:
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval rule {interval!r}; expected one of {list(INTERVALS)}")
    return interval


def _ratio_se(S: np.ndarray, n: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    """Linearised standard error of the ratio r = sum(S) / sum(n) over k clusters (last axis)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(k / (k - 1) * ((S - r[..., None] * n) ** 2).sum(axis=-1)) / n.sum(axis=-1)


def t_interval(S: np.ndarray, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Student t interval of the ratio sum(S) / sum(n) over clusters (last axis), per cluster the
    value sum S and count n, and the two-sided p-value of "the mean is 0": (lo, hi, p).

    Written out because scipy.stats has the t distribution but no cluster (ratio) standard error;
    for equal cluster sizes it is scipy.stats.ttest_1samp on the cluster means (checked in
    tests/evaluate/test_bootstrap.py)."""
    S, n = np.asarray(S, dtype=float), np.asarray(n, dtype=float)
    k = S.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = S.sum(axis=-1) / n.sum(axis=-1)
        se = _ratio_se(S, n, r, k)
        p = np.where(se > 0, 2 * student_t.sf(np.abs(r) / se, k - 1), np.where(r == 0, 1.0, 0.0))
    half = student_t.ppf(0.5 + level / 2, k - 1) * se
    return r - half, r + half, p


def studentized_interval(S: np.ndarray, n: np.ndarray, C: np.ndarray,
                         level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap-t interval of the ratio over clusters and its two-sided bootstrap p-value of 0.

    S, n: (metrics, k) cluster sums and counts; C: (n_boot, k) resample counts. A resample's SE is
    the same linearised ratio SE with each cluster counted C times, expanded into the three
    products C @ S^2, C @ (S n), C @ n^2, so no resample is materialised. Hand-written:
    scipy.stats.bootstrap has no studentized method (BCa, percentile, basic only)."""
    k = S.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = S.sum(axis=-1) / n.sum(axis=-1)
        se = _ratio_se(S, n, r, k)
        nb = n @ C.T  # (metrics, boot)
        rb = (S @ C.T) / nb
        ss = (S ** 2) @ C.T - 2 * rb * ((S * n) @ C.T) + rb ** 2 * ((n ** 2) @ C.T)
        seb = np.sqrt(k / (k - 1) * np.clip(ss, 0, None)) / nb
        tb = (rb - r[:, None]) / seb
    tb = np.where(np.isfinite(tb), tb, np.nan)  # a resample of one repeated cluster has no SE
    a = (1 - level) / 2
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: clusters without spread (below)
        q = np.nanquantile(tb, [a, 1 - a], axis=-1)
        # p: the smallest 1 - level whose interval excludes 0, i.e. twice the share of t* beyond the
        # observed t on its own side (+1 in numerator and denominator: never 0 from finite resamples)
        t_obs = r / se
        beyond = np.where(t_obs[:, None] > 0, tb >= t_obs[:, None], tb <= t_obs[:, None]).sum(axis=-1)
        p = np.minimum(1.0, 2 * (beyond + 1) / (np.isfinite(tb).sum(axis=-1) + 1))
    flat = se == 0  # no spread between clusters: the interval is the point
    lo = np.where(flat, r, r - q[1] * se)
    hi = np.where(flat, r, r - q[0] * se)
    p = np.where(flat, np.where(r == 0, 1.0, 0.0), p)
    return lo, hi, p


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


def _one_way(S: np.ndarray, n: np.ndarray, n_boot: int, level: float, seed, interval: str = "percentile"):
    """(lo, hi, p) over clusters; rows of (S, n) are metrics, columns clusters (value sums, counts).
    ``interval="studentized"``: :func:`studentized_interval`; ``"t"``: :func:`t_interval`;
    ``"percentile"``: the percentile bootstrap (p NaN),
    hand-written as one matrix product of resample counts with the cluster sums: the same
    percentile bootstrap as ``scipy.stats.bootstrap((S, n), ratio, paired=True,
    method="percentile")`` (checked against it in tests/evaluate/test_bootstrap.py), but scipy
    materialises every resample (resamples x clusters x metrics), about 0.1 s per group here, which
    is minutes for a paper-scale table of 64 countries x 8 methods."""
    if S.shape[-1] < 2:  # one cluster: no variation to resample
        nan = np.full(S.shape[:-1], np.nan)
        return nan, nan, nan
    if interval == "t":
        return t_interval(S, n, level)
    C = _counts(seed, S.shape[-1], n_boot)
    if interval == "studentized":
        return studentized_interval(S, n, C, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (S @ C.T) / (n @ C.T)  # (metrics, boot)
    return (*_percentile_interval(boot, level), np.full(S.shape[:-1], np.nan))


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
                  level: float = 0.95, seed: int = 0, interval: str = "studentized") -> pd.DataFrame:
    """Mean over cells of each column and its cluster interval over ``unit``.

    ``cells`` has columns ``country``, ``item`` and ``columns`` (one row per cell). Returns a frame
    indexed by column with ``mean``, ``lo``, ``hi`` and ``p`` (two-sided p-value of mean 0; NaN
    under the percentile bootstrap). ``interval``: ``"studentized"`` (bootstrap-t, the default),
    ``"t"`` (t on cluster means) or ``"percentile"``; ``unit="both"`` always uses the percentile
    bootstrap (the module doc says why). NaN values are
    left out of the mean. Intervals are NaN when there are fewer than two units, or with
    ``n_boot=0`` (no interval wanted).
    """
    check_unit(unit)
    check_interval(interval)
    columns = list(columns)
    V = cells[columns].to_numpy(dtype=float).T  # (metrics, cells)
    ok = ~np.isnan(V)
    Vz = np.where(ok, V, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = Vz.sum(axis=1) / ok.sum(axis=1)
    with threadpool_limits(1):  # small products: BLAS threads contending on a busy machine cost ~7x (measured)
        lo, hi, p = _intervals(cells, columns, Vz, ok, unit, n_boot, level, seed, interval)
    return pd.DataFrame({"mean": mean, "lo": lo, "hi": hi, "p": p}, index=pd.Index(columns, name="column"))


def _intervals(cells, columns, Vz, ok, unit, n_boot, level, seed, interval):
    """(lo, hi, p) per column for :func:`mean_interval`."""
    p = np.full(len(columns), np.nan)
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
            lo[ms], hi[ms], p[ms] = _one_way(S[np.ix_(ms, cols)], n[np.ix_(ms, cols)], n_boot, level, seed, interval)
    return lo, hi, p


def _effects(gen: np.random.Generator, sd: float, n: int, dist: str) -> np.ndarray:
    if dist == "exponential":  # skewed, mean 0: a few large positive effects
        return sd * (gen.exponential(1.0, n) - 1.0)
    if dist != "normal":
        raise ValueError(f"unknown effect distribution {dist!r}; expected 'normal' or 'exponential'")
    return gen.normal(0, sd, n)


def simulated_cells(gen: np.random.Generator, n_items: int, n_countries: int, *, mean: float = 0.0,
                    item_sd: float = 1.0, country_sd: float = 0.0, cell_sd: float = 1.0,
                    item_dist: str = "normal", country_dist: str = "normal") -> pd.DataFrame:
    """A crossed table ``value = mean + item effect + country effect + cell noise`` (normal effects;
    ``item_dist`` / ``country_dist`` ``"exponential"``: skewed effects, sd * (Exp(1) - 1), as a few
    hard items or odd countries make them), whose population mean is ``mean``: the known truth of
    the coverage check."""
    a = _effects(gen, item_sd, n_items, item_dist)[:, None]
    b = _effects(gen, country_sd, n_countries, country_dist)[None, :]
    v = mean + a + b + gen.normal(0, cell_sd, (n_items, n_countries))
    items, countries = np.meshgrid(np.arange(n_items), np.arange(n_countries), indexing="ij")
    return pd.DataFrame({"item": items.ravel(), "country": countries.ravel(), "value": v.ravel()})


def coverage(n_datasets: int, unit: str, *, seed: int = 0, n_boot: int = 1000, level: float = 0.95,
             interval: str = "studentized", **design) -> float:
    """Share of ``n_datasets`` simulated tables (:func:`simulated_cells`, keyword ``design``) whose
    ``unit`` interval (rule ``interval``) covers the true mean."""
    gen = rng(seed)
    mean = design.pop("mean", 0.0)
    hits = 0
    for k in range(n_datasets):
        ci = mean_interval(simulated_cells(gen, mean=mean, **design), ["value"], unit=unit, n_boot=n_boot,
                           level=level, seed=derive_seed(seed, k), interval=interval).loc["value"]
        hits += ci["lo"] <= mean <= ci["hi"]
    return hits / n_datasets
