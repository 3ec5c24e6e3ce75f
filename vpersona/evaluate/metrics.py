"""Distances between a predicted and a human answer distribution, per cell and summarised.

All metrics act on matrices of shape (n_cells, KMAX) (see :mod:`vpersona.core.distributions`), one row
per (country, item[, method...]) cell, with option positions x = 0..K-1 in catalog order:

- ``jsd``: Jensen-Shannon *distance*, base 2: sqrt of the JS divergence, in [0, 1]
  (0 identical, 1 disjoint supports).
- ``w1``: Wasserstein-1 (earth mover's) distance over option positions divided by K-1, in [0, 1]
  (OpinionQA's representativeness is 1 - w1).
- ``mean_error``: |E_pred[x] - E_human[x]| / (K-1), in [0, 1].
- ``diversity_ratio``: sd_pred / sd_human of x (1 ideal; < 1 = too concentrated).
- ``entropy_ratio``: H(pred) / H(human) (Shannon entropy; 1 ideal).

Nominal items (catalog scale ``nominal``) have no order, so ``w1``, ``mean_error`` and
``diversity_ratio`` are NaN for them; ``jsd`` and ``entropy_ratio`` are defined for every item.
A ratio whose human denominator is 0 (everyone gave the same answer) is NaN.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from vpersona.data.catalog import Catalog, ordered_mask
from vpersona.core.distributions import entropy, jsd, mean_answer, normalise, sd_answer, to_matrix
from vpersona.evaluate.bootstrap import check_unit, mean_interval

METRICS = ("jsd", "w1", "mean_error", "diversity_ratio", "entropy_ratio")
# The range a metric's mean lives in: an interval is cut to it (the bootstrap-t interval of a mean
# over a handful of items can reach past it; cutting loses no coverage, the true mean is inside).
BOUNDED = {"jsd": (0.0, 1.0), "w1": (0.0, 1.0), "mean_error": (0.0, 1.0),
           "diversity_ratio": (0.0, np.inf), "entropy_ratio": (0.0, np.inf)}


def wasserstein(P: np.ndarray, Q: np.ndarray, K) -> np.ndarray:
    """W1 over option positions divided by K-1, per row."""
    cdf_gap = np.abs(np.cumsum(normalise(P) - normalise(Q), axis=1))
    return cdf_gap.sum(axis=1) / (np.asarray(K, dtype=float) - 1.0)


def mean_error(P: np.ndarray, Q: np.ndarray, K) -> np.ndarray:
    """|mean position of P - mean position of Q| / (K-1), per row."""
    return np.abs(mean_answer(P) - mean_answer(Q)) / (np.asarray(K, dtype=float) - 1.0)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 1e-12)


def cell_metrics(P: np.ndarray, Q: np.ndarray, K, ordered) -> dict[str, np.ndarray]:
    """Every metric for predicted rows P against human rows Q; NaN where undefined (see module doc)."""
    ordered = np.asarray(ordered, dtype=bool)
    nan_unless_ordered = np.where(ordered, 1.0, np.nan)
    return {
        "jsd": jsd(P, Q),
        "w1": wasserstein(P, Q, K) * nan_unless_ordered,
        "mean_error": mean_error(P, Q, K) * nan_unless_ordered,
        "diversity_ratio": _ratio(sd_answer(P), sd_answer(Q)) * nan_unless_ordered,
        "entropy_ratio": _ratio(entropy(normalise(P)), entropy(normalise(Q))),
    }


def score(pred: pd.DataFrame, human: pd.DataFrame, *, catalog: Catalog | None = None,
          keys=("country", "item")) -> pd.DataFrame:
    """Per-cell metrics of a predicted distribution table against the human one.

    ``pred`` may carry more key columns than ``keys`` (``method``, ``kind``, ``draw``...): every
    pred row is matched to the human row with the same ``keys``. Pred rows without a human row
    (an item not asked in that country) and pred rows whose distribution is missing (all zero or
    NaN) are not scored: they are left out and counted in ``result.attrs["unscored"]``.
    Returns pred's non-probability columns + ``K`` + :data:`METRICS`.
    """
    keys = list(keys)
    for name, t in (("pred", pred), ("human", human)):
        lacking = [c for c in [*keys, "K"] if c not in t.columns]
        if lacking:
            raise ValueError(f"{name} table lacks columns {lacking}; expected a distribution table with {keys + ['K']}")
    if human.duplicated(keys).any():
        raise ValueError(f"human table has several rows per {keys}; expected one distribution per cell")
    pred = pred.reset_index(drop=True)
    row = pd.MultiIndex.from_frame(human[keys]).get_indexer(pd.MultiIndex.from_frame(pred[keys]))
    P, K = to_matrix(pred)
    Q_all, K_h = to_matrix(human)
    has_pred = P.sum(axis=1) > 0
    keep = (row >= 0) & has_pred
    mismatch = keep & (K_h[np.where(row >= 0, row, 0)] != K)
    if mismatch.any():
        bad = pred.loc[mismatch, keys].head(3).to_dict("records")
        raise ValueError(f"pred and human disagree on the number of options K for cells such as {bad}")
    P, K, Q = P[keep], K[keep], Q_all[row[keep]]
    out = pred.loc[keep, [c for c in pred.columns if not (c.startswith("p") and c[1:].isdigit())]]
    out = out.reset_index(drop=True)
    for name, values in cell_metrics(P, Q, K, ordered_mask(out["item"], catalog)).items():
        out[name] = values
    out.attrs["unscored"] = int((~keep).sum())
    return out


def summarise(cells: pd.DataFrame, by=("method", "country"), *, metrics=METRICS, unit: str = "items",
              n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean of each metric per group with a cluster-bootstrap interval that resamples ``unit``.

    ``unit`` (:mod:`vpersona.evaluate.bootstrap`): ``"items"`` (default), ``"countries"``,
    ``"both"`` (two-way) or ``"cells"`` (as if independent: too narrow, for comparison only). A
    unit that is constant within a group (countries within one country) gives NaN intervals.
    Columns: ``by`` + ``unit`` + ``n_cells``, ``n_items``, ``n_countries`` + per metric ``<m>``,
    ``<m>_lo``, ``<m>_hi`` (cut to the metric's range, ``BOUNDED``). NaN values (e.g. w1 of nominal items) are left out of that metric's
    mean. Each group is resampled with a generator seeded by ``seed`` alone, so its interval does
    not depend on which other groups exist.
    """
    by = [by] if isinstance(by, str) else list(by)
    check_unit(unit)
    metrics = [m for m in metrics if m in cells.columns]
    lacking = [c for c in [*by, "country", "item"] if c not in cells.columns]
    if lacking:
        raise ValueError(f"cannot summarise by {by}: {lacking} not columns of the cell table ({list(cells.columns)})")
    rows = []
    for key, group in cells.groupby(by, sort=True):
        group = group.sort_values(["country", "item"], kind="stable")
        ci = mean_interval(group, metrics, unit=unit, n_boot=n_boot, level=level, seed=seed)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update(unit=unit, n_cells=len(group), n_items=group["item"].nunique(),
                   n_countries=group["country"].nunique())
        for m in metrics:
            low, high = BOUNDED.get(m, (-np.inf, np.inf))
            row[m] = ci.loc[m, "mean"]
            row[f"{m}_lo"], row[f"{m}_hi"] = np.clip([ci.loc[m, "lo"], ci.loc[m, "hi"]], low, high)
        rows.append(row)
    columns = [*by, "unit", "n_cells", "n_items", "n_countries", *(f"{m}{s}" for m in metrics for s in ("", "_lo", "_hi"))]
    return pd.DataFrame(rows, columns=columns)
