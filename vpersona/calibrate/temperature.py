"""Mean-preserving temperature: widen over-concentrated LLM distributions without moving the estimated opinion.

**Mean-preserving temperature** (docs/method.md, calibration). For an ordered item (ordinal or binary scale) with
option positions x = 0..K-1::

    P~_k  ∝  P^_k ** (1/tau) * exp(lambda * x_k),    lambda such that E_P~[x] = E_P^[x]

tau > 1 widens, tau < 1 sharpens, tau = 1 is the identity. lambda is found per cell by a
vectorised safeguarded Newton iteration (Newton steps on E[x](lambda), whose derivative is
Var[x] > 0, falling back to bisection inside a bracket), to |mean error| < 1e-12. Nominal items
get plain temperature (P^ ** (1/tau), renormalised). Options with probability 0 stay 0; pass
``floor=eps`` to mix in eps of the uniform distribution first (documented in the params); the
mean kept is then the mean *before* the floor, which would otherwise pull it towards the middle. A 2-option
ordered item is left unchanged: its mean fixes its distribution. tau is one number, or one per
scale length K (``per_scale_length=True``; K not seen in fitting falls back to the global tau).
For single-peaked distributions the sd grows monotonically with tau; for a U-shaped one, tempering
at a fixed mean moves mass toward the middle and the sd can *fall* while the entropy still rises
(both shown in tests/calibrate/test_calibrate.py).

 ``"jsd"`` minimises the mean JS distance to the human
distributions over the fitting cells; ``"diversity"`` makes the geometric mean of the diversity
ratio sd^/sd (entropy ratio for nominal items) equal to 1. Every calibrator is fitted on some cells
and applied to others with :func:`vpersona.calibrate.splits.cross_fit`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar
from sklearn.base import BaseEstimator

from vpersona.calibrate.aggregate import valid_rows
from vpersona.data.catalog import Catalog, load_catalog, ordered_mask
from vpersona.core.distributions import KMAX, entropy, from_matrix, jsd, mean_answer, normalise, prob_columns, sd_answer, to_matrix

OBJECTIVES = ("jsd", "diversity")
X = np.arange(KMAX, dtype=float)


def _softmax_logs(A: np.ndarray) -> np.ndarray:
    """Rows of exp(A) normalised, with -inf entries giving exact zeros."""
    top = np.max(A, axis=1, keepdims=True)
    E = np.exp(A - np.where(np.isfinite(top), top, 0.0))
    return normalise(E)


def mean_preserving_temperature(P: np.ndarray, tau, ordered, *, tol: float = 1e-12,
                                max_iter: int = 200, target: np.ndarray | None = None) -> np.ndarray:
    """Apply P~ ∝ P^(1/tau) exp(lambda x) row-wise, lambda solved so each row keeps its mean.

    ``P``: (n, KMAX) rows summing to 1; ``tau``: scalar or (n,) positive; ``ordered``: (n,) bool,
    False rows get plain temperature. Rows with tau == 1 are returned unchanged. ``target``: (n,)
    means to keep instead of P's own (the mean before a ``floor`` was mixed in); ordered rows are
    then solved whatever their tau.
    """
    given = np.asarray(P, dtype=float)
    P = normalise(given)
    n = len(P)
    tau = np.broadcast_to(np.asarray(tau, dtype=float), (n,))
    if (tau <= 0).any() or not np.isfinite(tau).all():
        raise ValueError(f"temperature tau must be positive and finite; got {tau[(tau <= 0) | ~np.isfinite(tau)][:3]}")
    ordered = np.broadcast_to(np.asarray(ordered, dtype=bool), (n,))
    out = given.copy()
    change = ((tau != 1.0) | (target is not None and ordered)) & (P.sum(axis=1) > 0)
    logP = np.full_like(P, -np.inf)
    np.log(P, out=logP, where=P > 0)
    A = logP / tau[:, None]
    nominal = change & ~ordered
    out[nominal] = _softmax_logs(A[nominal])
    rows = np.flatnonzero(change & ordered)
    support = P[rows] > 0
    spread = np.where(support, X, -np.inf).max(axis=1) > np.where(support, X, np.inf).min(axis=1)
    rows = rows[spread]  # a single-option distribution stays as it is
    if len(rows):
        goal = P[rows] @ X if target is None else np.asarray(target, dtype=float)[rows]
        out[rows] = _solve_lambda(A[rows], goal, tol=tol, max_iter=max_iter)
    return out


def _solve_lambda(A: np.ndarray, target: np.ndarray, *, tol: float, max_iter: int) -> np.ndarray:
    """Rows softmax(A + lambda x) with E[x] = target, by bracketed Newton (vectorised over rows)."""
    def moments(lam, rows=slice(None)):
        Q = _softmax_logs(A[rows] + lam[:, None] * X)
        m = Q @ X
        return Q, m - target[rows], np.clip(Q @ X**2 - m**2, 0.0, None)

    n = len(A)
    lo, hi = np.full(n, -1.0), np.full(n, 1.0)
    for _ in range(40):  # widen the bracket until f(lo) < 0 < f(hi) (|lambda| <= 2^40)
        _, f_lo, _ = moments(lo)
        _, f_hi, _ = moments(hi)
        grow_lo, grow_hi = f_lo > 0, f_hi < 0
        if not (grow_lo.any() or grow_hi.any()):
            break
        lo[grow_lo] *= 2.0
        hi[grow_hi] *= 2.0
    lam = np.clip(np.zeros(n), lo, hi)
    active = np.ones(n, dtype=bool)
    Q = np.empty_like(A)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        Q[idx], f, var = moments(lam[idx], idx)
        done = np.abs(f) < tol
        pos = f > 0
        hi[idx[pos]] = lam[idx[pos]]
        lo[idx[~pos]] = lam[idx[~pos]]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = lam[idx] - f / var
        inside = np.isfinite(step) & (step > lo[idx]) & (step < hi[idx])
        lam[idx] = np.where(inside, step, 0.5 * (lo[idx] + hi[idx]))
        active[idx[done]] = False
        if not active.any():
            break
    return Q


def _tau_per_row(tau, K: np.ndarray) -> np.ndarray:
    if isinstance(tau, dict):
        missing = sorted(set(K.tolist()) - set(tau) - {"global"})
        if missing and "global" not in tau:
            raise ValueError(f"no temperature for scale lengths K={missing}; tau has {sorted(tau, key=str)}")
        fallback = tau.get("global", np.nan)
        return np.array([tau.get(int(k), fallback) for k in K], dtype=float)
    return np.full(len(K), float(tau))


def _changeable(K: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """Cells whose distribution temperature can change (ordered 2-option items cannot)."""
    return ~(ordered & (K <= 2))


def _objective_value(objective: str, Pc: np.ndarray, H: np.ndarray, ordered: np.ndarray) -> float:
    if objective == "jsd":
        return float(np.mean(jsd(Pc, H)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ordered, sd_answer(Pc) / sd_answer(H), entropy(Pc) / entropy(H))
        logs = np.log(ratio)
    return float(np.mean(logs[np.isfinite(logs)])) if np.isfinite(logs).any() else 0.0


def fit_temperature(P: np.ndarray, H: np.ndarray, ordered: np.ndarray, *, objective: str = "jsd",
                    bounds=(0.2, 20.0), target: np.ndarray | None = None) -> float:
    """The one tau that best calibrates rows P toward human rows H under ``objective`` (``target``:
    the means to keep, as in :func:`mean_preserving_temperature`)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown calibration objective {objective!r}; expected one of {OBJECTIVES}")
    if len(P) == 0:
        return 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])

    def value(log_tau):
        return _objective_value(objective, mean_preserving_temperature(P, np.exp(log_tau), ordered, target=target),
                                H, ordered)

    if objective == "jsd":
        res = minimize_scalar(value, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
        return float(np.exp(res.x))
    f_lo, f_hi = value(lo), value(hi)
    if f_lo >= 0 or f_hi <= 0:  # no root inside the bounds: the closer bound
        return float(np.exp(lo if abs(f_lo) < abs(f_hi) else hi))
    return float(np.exp(brentq(value, lo, hi, xtol=1e-10)))


def _paired(pred: pd.DataFrame, human: pd.DataFrame, keys) -> tuple[pd.DataFrame, np.ndarray]:
    keys = list(keys)
    if pred.duplicated(keys).any():
        raise ValueError(f"pred has several rows per {keys} (e.g. several methods or persona kinds); "
                         f"fit one calibrator per method/kind (cross_fit(..., by='kind') does that)")
    row = pd.MultiIndex.from_frame(human[keys]).get_indexer(pd.MultiIndex.from_frame(pred[keys]))
    keep = (row >= 0) & valid_rows(pred)
    H, _ = to_matrix(human)
    return pred[keep].reset_index(drop=True), H[row[keep]]


class MeanPreservingTemperature(BaseEstimator):
    """Mean-preserving temperature in the scikit-learn style (plain temperature for nominal items).

    Hyperparameters: ``tau`` None (fit it), a float (fixed) or a dict {K: tau} (fixed per scale
    length; key ``"global"`` is the fallback); ``per_scale_length`` (fit one tau per K);
    ``objective`` ("jsd" or "diversity"); ``floor``; ``bounds`` of the search. :meth:`fit` learns
    ``tau_``; :meth:`transform` applies it; :attr:`params` is ``tau_`` as a flat dict.
    """

    def __init__(self, tau=None, *, per_scale_length: bool = False, objective: str = "jsd",
                 floor: float = 0.0, bounds=(0.2, 20.0), catalog: Catalog | None = None):
        self.tau, self.per_scale_length, self.objective = tau, per_scale_length, objective
        self.floor, self.bounds, self.catalog = floor, bounds, catalog

    @property
    def params(self) -> dict:
        tau = self.tau_
        flat = {f"tau_K{k}": v for k, v in tau.items()} if isinstance(tau, dict) else {"tau": tau}
        return {**flat, "objective": self.objective, "floor": self.floor}

    def _prepare(self, table: pd.DataFrame):
        """(P, K, ordered, target): P floored when ``floor`` > 0, and then the means before the
        floor (the floor pulls each mean towards the middle; the mean-preserving step restores it)."""
        P, K = to_matrix(table)
        target = None
        if self.floor > 0:
            target = normalise(P) @ X
            inside = X[None, :] < K[:, None]
            P = (1 - self.floor) * normalise(P) + self.floor * inside / K[:, None]
        return normalise(P), K, ordered_mask(table["item"], self.catalog or load_catalog()), target

    def fit(self, pred: pd.DataFrame, human: pd.DataFrame, *, keys=("country", "item")) -> "MeanPreservingTemperature":
        """Learn ``tau_`` on the cells of ``pred`` that have a human distribution.

        A fixed ``tau`` (float or dict) is kept as is: fitting does nothing.
        """
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown calibration objective {self.objective!r}; expected one of {OBJECTIVES}")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must be in [0, 1); got {self.floor}")
        if self.tau is not None:
            self.tau_ = self.tau
            return self
        pred, H = _paired(pred, human, keys)
        if pred.empty:
            raise ValueError("no cell of pred has a human distribution to fit on")
        P, K, ordered, target = self._prepare(pred)
        use = _changeable(K, ordered)
        fit = lambda m: fit_temperature(P[m], H[m], ordered[m], objective=self.objective, bounds=self.bounds,
                                        target=None if target is None else target[m])
        global_tau = fit(use)
        if not self.per_scale_length:
            self.tau_ = global_tau
        else:
            self.tau_ = {int(k): fit(use & (K == k)) for k in np.unique(K[use])}
            self.tau_["global"] = global_tau
        return self

    def transform(self, pred: pd.DataFrame) -> pd.DataFrame:
        """Calibrated copy of ``pred`` (same columns; missing distributions stay missing)."""
        if not hasattr(self, "tau_"):
            raise RuntimeError("MeanPreservingTemperature is not fitted: call fit() first")
        out = pred.reset_index(drop=True).copy()
        ok = valid_rows(out)
        P, K, ordered, target = self._prepare(out[ok])
        Pc = mean_preserving_temperature(P, _tau_per_row(self.tau_, K), ordered, target=target)
        out.loc[ok, prob_columns()] = from_matrix(out.loc[ok, []], Pc, K)[prob_columns()].to_numpy()
        return out


def mean_shift(before: pd.DataFrame, after: pd.DataFrame, *, keys=("method", "country", "item"),
               catalog: Catalog | None = None) -> dict:
    """How far calibration moved the mean answer on ordered items (it should not move it at all):
    the largest |shift| over the cells of ``after``, with the numbers of ordered and nominal cells."""
    keys = list(keys)
    after = after.sort_values(keys).reset_index(drop=True)
    before = before.merge(after[keys], on=keys).sort_values(keys).reset_index(drop=True)
    ordered = ordered_mask(after["item"], catalog)
    shift = np.abs(mean_answer(to_matrix(before)[0]) - mean_answer(to_matrix(after)[0]))[ordered]
    return {"max_shift": float(shift.max()) if len(shift) else 0.0,
            "n_ordered": int(ordered.sum()), "n_nominal": int((~ordered).sum())}
