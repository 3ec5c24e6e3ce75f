"""Paired comparisons of two methods on the cells both have, with cluster-bootstrap intervals.

A claim such as "value personas beat country personas" is a statement about the difference
``metric[a] - metric[b]`` on the same (country, item) cells, not about two separate levels: the
two methods share the hard items and the hard countries, so the paired difference has a much
narrower interval than the two levels suggest. :func:`paired_difference` takes the per-cell
score table of :func:`vpersona.evaluate.metrics.score` and returns the mean difference, its
cluster-bootstrap interval over the named ``unit`` (:mod:`vpersona.evaluate.bootstrap`), and in
how many countries ``a`` has the lower mean (lower is better for jsd, w1, mean_error; for the
diversity ratio use ``metric="diversity_gap"``, |ratio - 1|, see :func:`with_diversity_gap`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from vpersona.evaluate.bootstrap import check_unit, mean_interval, n_units

KEYS = ["country", "item"]


def with_diversity_gap(cells: pd.DataFrame) -> pd.DataFrame:
    """Add ``diversity_gap = |diversity_ratio - 1|`` (0 ideal), so that lower is better for it too."""
    if "diversity_ratio" not in cells.columns:
        raise ValueError("cell table lacks diversity_ratio; expected the output of metrics.score")
    return cells.assign(diversity_gap=(cells["diversity_ratio"] - 1.0).abs())


def _method_cells(cells: pd.DataFrame, method: str, metric: str) -> pd.Series:
    sub = cells[cells["method"] == method]
    if sub.empty:
        raise ValueError(f"method {method!r} is not in the cell table ({sorted(cells['method'].unique())})")
    if sub.duplicated(KEYS).any():
        raise ValueError(f"method {method!r} has several rows per (country, item); average draws first "
                         "(references.average_draws)")
    return sub.set_index(KEYS)[metric]


def paired_cells(cells: pd.DataFrame, a: str, b: str, metric: str = "jsd") -> pd.DataFrame:
    """Cells both methods scored (metric not NaN for either): country, item, a, b, diff = a - b."""
    for col in ["method", *KEYS, metric]:
        if col not in cells.columns:
            raise ValueError(f"cell table lacks column {col!r}; expected the output of metrics.score")
    both = pd.concat({"a": _method_cells(cells, a, metric), "b": _method_cells(cells, b, metric)},
                     axis=1, join="inner").dropna()
    both["diff"] = both["a"] - both["b"]
    return both.reset_index().sort_values(KEYS, kind="stable").reset_index(drop=True)


def paired_difference(cells: pd.DataFrame, a: str, b: str, *, metric: str = "jsd", unit: str = "items",
                      n_boot: int = 1000, level: float = 0.95, seed: int = 0, interval: str = "studentized") -> dict:
    """Mean ``metric[a] - metric[b]`` on shared cells, its paired ``unit`` interval, country wins.

    ``interval``: ``"studentized"`` (bootstrap-t over the ``unit`` means of the per-cell
    difference, default), ``"t"`` or ``"percentile"``; see :mod:`vpersona.evaluate.bootstrap`.
    Keys: ``a, b, metric, unit, mean, lo, hi, p`` (two-sided p of no difference; NaN under the
    percentile bootstrap),
    ``n_cells, n_units`` (units resampled: items,
    countries, items x countries or cells), ``n_items``, ``wins``
    (countries where a's mean over the shared cells is lower than b's) and ``n_countries``.
    Negative ``mean`` = a has the lower error.
    """
    check_unit(unit)
    d = paired_cells(cells, a, b, metric)
    if d.empty:
        raise ValueError(f"methods {a!r} and {b!r} share no scored cell for {metric}")
    ci = mean_interval(d, ["diff"], unit=unit, n_boot=n_boot, level=level, seed=seed, interval=interval).loc["diff"]
    per_country = d.groupby("country")[["a", "b"]].mean()
    return {"a": a, "b": b, "metric": metric, "unit": unit, "mean": float(ci["mean"]),
            "lo": float(ci["lo"]), "hi": float(ci["hi"]), "p": float(ci["p"]), "n_cells": int(len(d)),
            "n_units": int(n_units(d, unit)),
            "n_items": int(d["item"].nunique()),
            "wins": int((per_country["a"] < per_country["b"]).sum()), "n_countries": int(len(per_country))}


def paired_table(cells: pd.DataFrame, pairs, *, metric: str = "jsd", unit: str = "items", n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0, skip_missing: bool = True) -> pd.DataFrame:
    """One :func:`paired_difference` row per (a, b) pair; pairs with a method absent are skipped
    (or raise, with ``skip_missing=False``)."""
    present = set(cells["method"])
    rows = []
    for a, b in pairs:
        if skip_missing and not {a, b} <= present:
            continue
        rows.append(paired_difference(cells, a, b, metric=metric, unit=unit, n_boot=n_boot, level=level, seed=seed))
    columns = ["a", "b", "metric", "unit", "mean", "lo", "hi", "p", "n_cells", "n_units", "n_items", "wins", "n_countries"]
    return pd.DataFrame(rows, columns=columns)


def verdict(lo: float, hi: float, *, lower_is_claim: bool = True) -> str:
    """"yes" when the interval excludes 0 in the claimed direction, "no" the other way, else "not shown"."""
    if np.isnan(lo) or np.isnan(hi):
        return "not shown"
    if lower_is_claim:
        return "yes" if hi < 0 else "no" if lo > 0 else "not shown"
    return "yes" if lo > 0 else "no" if hi < 0 else "not shown"


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control for any dependence).

    Hand-written: scipy has only Benjamini-Hochberg (``false_discovery_control``), and statsmodels'
    ``multipletests`` would be a heavy dependency for these few lines. NaN p-values stay NaN and
    are not counted in the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, j in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[j]))
        out[j] = running
    return out
