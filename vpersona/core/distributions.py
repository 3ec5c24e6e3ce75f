"""The one table shape every step shares: answer distributions, one row per cell.

A *distribution table* is a DataFrame with key columns (e.g. ``country``, ``item``, ``method``),
``K`` (number of answer options of the item) and probability columns ``p1 .. pKMAX`` in the
catalog's option order; columns beyond an item's ``K`` are 0. It is CSV-friendly and turns into
one (n_cells, KMAX) matrix for vectorised metrics and calibration.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy as _entropy

KMAX = 10
POSITIONS = np.arange(KMAX, dtype=float)


def prob_columns(kmax: int = KMAX) -> list[str]:
    return [f"p{k}" for k in range(1, kmax + 1)]


def to_matrix(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(P, K)``: P of shape (n, KMAX) with zeros past each row's K, and K of shape (n,)."""
    cols = [c for c in prob_columns() if c in table.columns]
    P = np.zeros((len(table), KMAX))
    P[:, : len(cols)] = table[cols].to_numpy(dtype=float)
    P = np.nan_to_num(P, nan=0.0)
    return P, table["K"].to_numpy(dtype=int)


def from_matrix(keys: pd.DataFrame, P: np.ndarray, K) -> pd.DataFrame:
    """Inverse of :func:`to_matrix`: key columns + ``K`` + ``p1..pKMAX``."""
    P = np.asarray(P, dtype=float)
    if P.shape[1] > KMAX:
        raise ValueError(f"items with more than {KMAX} answer options are not supported (got {P.shape[1]})")
    out = keys.reset_index(drop=True).copy()
    out["K"] = np.asarray(K, dtype=int)
    full = np.zeros((len(out), KMAX))
    full[:, : P.shape[1]] = P
    for j, c in enumerate(prob_columns()):
        out[c] = full[:, j]
    return out


def normalise(P: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; all-zero rows stay zero."""
    s = P.sum(axis=1, keepdims=True)
    return np.divide(P, s, out=np.zeros_like(P, dtype=float), where=s > 0)


def entropy(P: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits per row (rows normalised; an all-zero row has entropy 0)."""
    P = normalise(np.asarray(P, dtype=float))
    return np.nan_to_num(_entropy(P, base=2, axis=1), nan=0.0)


def jsd(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2) per row, in [0, 1]; rows are normalised first."""
    P, Q = normalise(np.asarray(P, dtype=float)), normalise(np.asarray(Q, dtype=float))
    if len(P) == 0:
        return np.zeros(0)
    with np.errstate(invalid="ignore"):  # identical rows: rounding can give sqrt(-1e-17) = nan, i.e. 0
        return np.nan_to_num(jensenshannon(P, Q, base=2, axis=1), nan=0.0)


def mean_answer(P: np.ndarray) -> np.ndarray:
    """Expected option position (0-based) per row."""
    return normalise(P) @ POSITIONS[: P.shape[1]]


def sd_answer(P: np.ndarray) -> np.ndarray:
    """Standard deviation of the option position per row."""
    P = normalise(P)
    x = POSITIONS[: P.shape[1]]
    m = P @ x
    return np.sqrt(np.clip(P @ x**2 - m**2, 0.0, None))
