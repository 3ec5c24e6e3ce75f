"""Turning latent scores into answer codes whose weighted shares hit the real marginals exactly
(rank assignment, polishing, maximum-entropy joint tables, missing codes)."""
from __future__ import annotations

import numpy as np

from vpersona.data.synthetic.model import DK, NA, OTHER



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
