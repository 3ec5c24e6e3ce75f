"""Cross-cultural summaries: who a method serves worse, and whether it keeps countries apart.

- :func:`country_groups` — "aligned" vs "underrepresented" countries. Rule ``"zones"`` (default):
  aligned = the Inglehart-Welzel cultural zones English-speaking and Protestant Europe
  (``vpersona/resources/countries.csv``; pass ``aligned_zones=`` to change), the rest
  underrepresented. Rule ``"iw_distance"``: aligned = Euclidean distance on the IW map
  (``vpersona/resources/iw_map_positions.csv``) from a reference country (default USA) at most
  ``threshold`` (default 1.5 map units, about the spread of the English-speaking zone).
- :func:`group_gap` — per method, the mean error of underrepresented minus aligned countries
  (each country's mean over its items first, then the mean over the group's countries, so a
  country weighs the same whatever number of items it has); :func:`gap_change` — how a gap moves
  between two methods (e.g. value vs none, calibrated vs uncalibrated). :func:`gap_intervals`
  gives both with bootstrap intervals: by default resampling countries *within* each group (the
  gap is a contrast between two groups of countries, so its uncertainty is which countries stand
  for each group; group sizes stay fixed), the change paired (the same resample for both methods).
  With ``unit="countries"`` the default interval is Welch's t on the country means (the gap is a
  two-sample contrast; ``interval="percentile"`` gives the within-group bootstrap, which covers
  only 0.75 at 2 vs 4 countries where Welch covers 0.95, ``benchmarks/bench_coverage.py``).
- :func:`divergence_ratio` — per item, the mean pairwise JS distance between countries'
  predicted distributions over the same for human distributions (countries both have), then
  averaged over items. 1 is ideal; < 1 countries collapse together, > 1 stereotyping.
- :func:`mean_correlation` — per ordered item, Pearson correlation across countries of the
  predicted vs human mean answer; averaged over items (plain mean of r, items with >= 3
  countries and non-constant means).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from vpersona.data.catalog import Catalog
from vpersona.core.distributions import entropy, mean_answer, to_matrix
from vpersona.data.catalog import ordered_mask
from vpersona.data.countries import zones  # noqa: F401  (re-exported: the grouping rule reads it)
from vpersona.core.package_data import package_table
from vpersona.core.seeds import rng
from scipy.stats import ttest_ind

from vpersona.evaluate.bootstrap import check_unit

ALIGNED_ZONES = ("English-speaking", "Protestant Europe")
ALIGNED, UNDERREPRESENTED = "aligned", "underrepresented"


def iw_distance(countries=None, reference: str = "USA") -> pd.Series:
    """Euclidean distance on the published IW map from ``reference`` (index iso3)."""
    pos = package_table("iw_map_positions.csv").set_index("iso3")[["traditional_secular", "survival_selfexpression"]]
    if reference not in pos.index:
        raise ValueError(f"reference country {reference!r} has no IW map position")
    dist = np.sqrt(((pos - pos.loc[reference]) ** 2).sum(axis=1)).rename("iw_distance")
    if countries is None:
        return dist
    unknown = [c for c in countries if c not in dist.index]
    if unknown:
        raise ValueError(f"countries {unknown} have no IW map position in vpersona/resources/iw_map_positions.csv")
    return dist[list(countries)]


def country_groups(countries, rule: str = "zones", *, aligned_zones=ALIGNED_ZONES, reference: str = "USA",
                   threshold: float = 1.5) -> pd.Series:
    """"aligned" / "underrepresented" per country (index iso3); the rule is in the module doc."""
    countries = sorted(set(countries))
    if rule == "zones":
        aligned = zones(countries).isin(list(aligned_zones))
    elif rule == "iw_distance":
        aligned = iw_distance(countries, reference) <= threshold
    else:
        raise ValueError(f"unknown grouping rule {rule!r}; expected 'zones' or 'iw_distance'")
    return pd.Series(np.where(aligned, ALIGNED, UNDERREPRESENTED), index=pd.Index(countries, name="country"),
                     name="group")


def group_gap(cells: pd.DataFrame, groups: pd.Series, *, metric: str = "jsd", by="method") -> pd.DataFrame:
    """Per ``by`` value: mean ``metric`` of aligned and underrepresented countries, and their gap."""
    by = [by] if isinstance(by, str) else list(by)
    unknown = sorted(set(cells["country"]) - set(groups.index))
    if unknown:
        raise ValueError(f"countries {unknown} have no group; pass groups covering every scored country")
    per_country = cells.groupby([*by, "country"], sort=True)[metric].mean().reset_index()
    per_country["group"] = per_country["country"].map(groups)
    table = per_country.pivot_table(index=by, columns="group", values=metric, aggfunc="mean")
    counts = per_country.pivot_table(index=by, columns="group", values="country", aggfunc="count")
    out = pd.DataFrame(index=table.index)
    for g in (ALIGNED, UNDERREPRESENTED):
        out[g] = table[g] if g in table else np.nan
        out[f"n_{g}"] = counts[g].fillna(0).astype(int) if g in counts else 0
    out["gap"] = out[UNDERREPRESENTED] - out[ALIGNED]
    out["metric"] = metric
    return out.reset_index()


def gap_change(gaps: pd.DataFrame, pairs, *, by: str = "method") -> pd.DataFrame:
    """Gap of each (to, from) method pair: ``change = gap[to] - gap[from]`` (negative = narrowed)."""
    g = gaps.set_index(by)["gap"]
    rows = []
    for to, frm in pairs:
        missing = [m for m in (to, frm) if m not in g.index]
        if missing:
            raise ValueError(f"methods {missing} are not in the gap table ({list(g.index)})")
        rows.append({"to": to, "from": frm, "gap_to": g[to], "gap_from": g[frm], "change": g[to] - g[frm]})
    return pd.DataFrame(rows)


GAP_UNITS = ("countries", "items", "both")
GAP_INTERVALS = ("t", "percentile")  # Welch t (countries unit) or the bootstrap
# Fewest countries per group for a gap interval: Welch's t needs 2 (a variance per group); it
# holds 95% from 2 vs 4 countries up in benchmarks/bench_coverage.py (normal and skewed country
# effects, the gap and its narrowing). Below it the summary prints the gap without a verdict.
MIN_GAP_COUNTRIES = 2


def _country_means(cells: pd.DataFrame, methods, metric: str, countries, items) -> tuple[np.ndarray, np.ndarray]:
    """(methods, items, countries) values (0 where absent) and the 0/1 presence, cells both methods have."""
    V = np.zeros((len(methods), len(items), len(countries)))
    M = np.zeros_like(V)
    for k, m in enumerate(methods):
        sub = cells[(cells["method"] == m) & cells[metric].notna()]
        i, c = pd.Index(items).get_indexer(sub["item"]), pd.Index(countries).get_indexer(sub["country"])
        ok = (i >= 0) & (c >= 0)
        V[k, i[ok], c[ok]] = sub[metric].to_numpy(dtype=float)[ok]
        M[k, i[ok], c[ok]] = 1.0
    shared = M.prod(axis=0)  # compare methods on the same cells only
    return V * shared, np.broadcast_to(shared, V.shape).copy()


def _boot_gaps(V, M, under: np.ndarray, unit: str, n_boot: int, seed) -> np.ndarray:
    """(boot, methods) gaps under item and/or within-group country resampling.

    Hand-written: scipy.stats.bootstrap draws either one index shared by paired samples or an
    independent one per sample, not item and stratified country weights over a crossed table
    shared by several methods (which the paired change needs)."""
    gen = rng(seed)
    n_m, n_i, n_c = V.shape
    A = np.ones((n_boot, n_i))
    if unit in ("items", "both"):
        A = np.stack([np.bincount(r, minlength=n_i) for r in gen.integers(0, n_i, (n_boot, n_i))]).astype(float)
    B = np.ones((n_boot, n_c))
    if unit in ("countries", "both"):
        B = np.zeros((n_boot, n_c))
        for members in (np.flatnonzero(under), np.flatnonzero(~under)):  # resample within each group
            draws = members[gen.integers(0, len(members), (n_boot, len(members)))]
            np.add.at(B, (np.arange(n_boot)[:, None], draws), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = np.einsum("bi,mic->bmc", A, V) / np.einsum("bi,mic->bmc", A, M)  # country means
    cm = np.nan_to_num(cm)
    gap = np.zeros((n_boot, n_m))
    for sign, g in ((1.0, under), (-1.0, ~under)):
        Bg = B * g[None, :]
        gap += sign * np.einsum("bmc,bc->bm", cm, Bg) / Bg.sum(axis=1, keepdims=True)
    return gap


def _welch(x: np.ndarray, under: np.ndarray, level: float) -> tuple[float, float]:
    """Welch t interval of mean(x[under]) - mean(x[~under]) (x: one value per country) and its p."""
    xu, xa = x[under], x[~under]
    if len(xu) < 2 or len(xa) < 2:
        return np.nan, np.nan, np.nan
    if np.ptp(xu) <= 1e-12 and np.ptp(xa) <= 1e-12:  # no spread (up to rounding): the interval is the point
        d = float(xu.mean() - xa.mean())
        return d, d, float(d == 0)
    with warnings.catch_warnings():  # a group of identical countries is fine (its variance is 0)
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        res = ttest_ind(xu, xa, equal_var=False)
    ci = res.confidence_interval(level)
    return float(ci.low), float(ci.high), float(res.pvalue)


def gap_intervals(cells: pd.DataFrame, groups: pd.Series, methods, pairs=(), *, metric: str = "jsd",
                  unit: str = "countries", n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                  interval: str = "t") -> pd.DataFrame:
    """Gap (underrepresented - aligned) per method and its change per (a, b) pair, with intervals.

    All methods in one call are compared on the (country, item) cells they all have, so a gap and
    a change agree with each other. ``unit``: ``"countries"`` (default: resample countries within
    each group), ``"items"``, or ``"both"``. Rows: ``what`` ("gap" / "change"), ``a``, ``b`` (empty
    for a gap), ``metric``, ``unit``, ``estimate``, ``lo``, ``hi``, ``n_aligned``,
    ``n_underrepresented``, ``n_items``. A "change" is ``gap[a] - gap[b]``; a "narrowing" is
    ``|gap[a]| - |gap[b]|`` (negative = a's gap is closer to 0, whatever its sign).
    ``p``: two-sided p-value of 0 (Welch; NaN under the bootstrap).
    ``interval``: ``"t"`` (default) = Welch t on per-country values when ``unit="countries"``: the
    country means for a gap, their paired difference for a change, and for a narrowing
    ``sign(gap a) * mean a - sign(gap b) * mean b`` (the delta method for |.|, signs of the point
    estimates); other units always use the percentile bootstrap. ``n_boot=0``: no intervals.
    """
    if interval not in GAP_INTERVALS:
        raise ValueError(f"unknown gap interval rule {interval!r}; expected one of {list(GAP_INTERVALS)}")
    if unit not in GAP_UNITS:
        check_unit(unit)
        raise ValueError(f"a gap's bootstrap unit must be one of {list(GAP_UNITS)}, got {unit!r}")
    methods = list(dict.fromkeys([*methods, *(m for p in pairs for m in p)]))
    absent = sorted(set(methods) - set(cells["method"]))
    if absent:
        raise ValueError(f"methods {absent} are not in the cell table ({sorted(cells['method'].unique())})")
    unknown = sorted(set(cells["country"]) - set(groups.index))
    if unknown:
        raise ValueError(f"countries {unknown} have no group; pass groups covering every scored country")
    countries, items = sorted(set(cells["country"])), sorted(set(cells["item"]))
    V, M = _country_means(cells, methods, metric, countries, items)
    has = M[0].sum(axis=0) > 0
    countries, V, M = [c for c, h in zip(countries, has) if h], V[:, :, has], M[:, :, has]
    under = groups.reindex(countries).to_numpy() == UNDERREPRESENTED
    if under.all() or not under.any():
        raise ValueError("a gap needs scored countries in both groups (aligned and underrepresented)")
    point = _boot_gaps(V, M, under, "none", 1, seed)[0]
    welch = unit == "countries" and interval == "t"
    boot = _boot_gaps(V, M, under, unit, n_boot, seed) if n_boot and not welch else np.full((1, len(methods)), np.nan)
    q = 100 * (1 - level) / 2
    rows = []
    col = {m: k for k, m in enumerate(methods)}
    wanted = [("gap", m, "", point[col[m]], boot[:, col[m]]) for m in methods] + \
        [("change", a, b, point[col[a]] - point[col[b]], boot[:, col[a]] - boot[:, col[b]]) for a, b in pairs] + \
        [("narrowing", a, b, abs(point[col[a]]) - abs(point[col[b]]), np.abs(boot[:, col[a]]) - np.abs(boot[:, col[b]]))
         for a, b in pairs]
    if welch:
        with np.errstate(invalid="ignore", divide="ignore"):
            cm = V.sum(axis=1) / M.sum(axis=1)  # (methods, countries) country means on shared items
        sign = np.where(point < 0, -1.0, 1.0)
        per_country = {"gap": lambda a, b: cm[col[a]], "change": lambda a, b: cm[col[a]] - cm[col[b]],
                       "narrowing": lambda a, b: sign[col[a]] * cm[col[a]] - sign[col[b]] * cm[col[b]]}
    for what, a, b, est, dist in wanted:
        p = np.nan
        if not n_boot:
            lo, hi = np.nan, np.nan
        elif welch:
            lo, hi, p = _welch(per_country[what](a, b), under, level)
        else:
            lo, hi = np.nanpercentile(dist, [q, 100 - q])
        rows.append({"what": what, "a": a, "b": b, "metric": metric, "unit": unit, "estimate": float(est),
                     "lo": float(lo), "hi": float(hi), "p": float(p), "n_aligned": int((~under).sum()),
                     "n_underrepresented": int(under.sum()), "n_items": int((M[0].sum(axis=1) > 0).sum())})
    return pd.DataFrame(rows)


def _pairwise_mean_jsd(P: np.ndarray, present: np.ndarray, chunk: int = 8) -> np.ndarray:
    """P: (items, countries, KMAX); present: (items, countries). Mean JSD over present pairs per item.

    Uses JS divergence = H(M) - (H(P) + H(Q)) / 2 (bits), so only the pair mixtures need logs;
    items are processed a few at a time so the pair arrays stay in cache.
    """
    n_items, n_c, kmax = P.shape
    iu, ju = np.triu_indices(n_c, k=1)
    H = entropy(P.reshape(-1, kmax)).reshape(n_items, n_c)
    out = np.empty(n_items)
    for start in range(0, n_items, chunk):  # chunks of items, each vectorised over all country pairs
        sl = slice(start, start + chunk)
        M = 0.5 * (P[sl, iu] + P[sl, ju])
        div = entropy(M.reshape(-1, kmax)).reshape(M.shape[:2]) - 0.5 * (H[sl, iu] + H[sl, ju])
        pair = present[sl, iu] & present[sl, ju]
        with np.errstate(invalid="ignore"):
            out[sl] = np.where(pair, np.sqrt(np.clip(div, 0.0, 1.0)), 0).sum(axis=1) / pair.sum(axis=1)
    return out


def _cube(table: pd.DataFrame, items, countries) -> tuple[np.ndarray, np.ndarray]:
    P, _ = to_matrix(table)
    i = pd.Index(items).get_indexer(table["item"])
    c = pd.Index(countries).get_indexer(table["country"])
    cube = np.zeros((len(items), len(countries), P.shape[1]))
    present = np.zeros((len(items), len(countries)), dtype=bool)
    ok = (i >= 0) & (c >= 0) & (P.sum(axis=1) > 0)
    cube[i[ok], c[ok]] = P[ok]
    present[i[ok], c[ok]] = True
    return cube, present


def divergence_ratio(pred: pd.DataFrame, human: pd.DataFrame, *, by="method") -> pd.DataFrame:
    """Per ``by`` value and item: predicted and human between-country mean JSD and their ratio.

    Use ``.groupby(by)["ratio"].mean()`` for the per-method summary (:func:`summarise_divergence`).
    """
    by = [by] if isinstance(by, str) else list(by)
    rows, human_cache = [], {}
    groups = pred.groupby(by, sort=True) if by else [((), pred)]
    for key, sub in groups:
        items = sorted(set(sub["item"]) & set(human["item"]))
        countries = sorted(set(sub["country"]) & set(human["country"]))
        Pp, have_p = _cube(sub, items, countries)
        Ph, have_h = _cube(human, items, countries)
        both = have_p & have_h
        memo = (tuple(items), tuple(countries), both.tobytes())  # methods usually share the human side
        if memo not in human_cache:
            human_cache[memo] = _pairwise_mean_jsd(Ph, both)
        d_pred, d_human = _pairwise_mean_jsd(Pp, both), human_cache[memo]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(d_human > 0, d_pred / d_human, np.nan)
        key = key if isinstance(key, tuple) else (key,)
        frame = pd.DataFrame({"item": items, "n_countries": both.sum(axis=1), "pred_divergence": d_pred,
                              "human_divergence": d_human, "ratio": ratio})
        for name, value in zip(by, key):
            frame.insert(0, name, value)
        rows.append(frame[frame["n_countries"] >= 2])
    return pd.concat(rows, ignore_index=True)


def summarise_divergence(per_item: pd.DataFrame, *, by="method") -> pd.DataFrame:
    """Mean divergence ratio over items per ``by`` value (and the mean pred/human divergences)."""
    return per_item.groupby(by, sort=True).agg(divergence_ratio=("ratio", "mean"),
                                               pred_divergence=("pred_divergence", "mean"),
                                               human_divergence=("human_divergence", "mean"),
                                               n_items=("item", "nunique")).reset_index()


def mean_correlation(pred: pd.DataFrame, human: pd.DataFrame, *, by="method",
                     catalog: Catalog | None = None) -> pd.DataFrame:
    """Per ``by`` value and ordered item: Pearson r across countries of predicted vs human mean answers."""
    by = [by] if isinstance(by, str) else list(by)
    hum = human[ordered_mask(human["item"], catalog)]
    h = hum[["country", "item"]].assign(human_mean=mean_answer(to_matrix(hum)[0]))
    prd = pred[ordered_mask(pred["item"], catalog)]
    P, _ = to_matrix(prd)
    p = prd[[*by, "country", "item"]].assign(pred_mean=mean_answer(P))[P.sum(axis=1) > 0]
    m = p.merge(h, on=["country", "item"], how="inner")
    g = m.groupby([*by, "item"], sort=True)
    stats = g.agg(n_countries=("country", "size"))
    x, y = m["pred_mean"], m["human_mean"]
    m = m.assign(xy=x * y, xx=x * x, yy=y * y)
    s = m.groupby([*by, "item"], sort=True)[["pred_mean", "human_mean", "xy", "xx", "yy"]].mean()
    cov = s["xy"] - s["pred_mean"] * s["human_mean"]
    var_x, var_y = s["xx"] - s["pred_mean"] ** 2, s["yy"] - s["human_mean"] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var_x * var_y)
    stats["r"] = r.where((stats["n_countries"] >= 3) & (var_x > 1e-15) & (var_y > 1e-15))
    return stats.reset_index()
