"""Reference rows every results table carries, computed by the same code as the methods.

All return distribution tables with a ``method`` column (score them with
:func:`vpersona.evaluate.metrics.score`):

- ``uniform``: every option equally likely.
- ``global``: the pooled human distribution of the item over countries, countries weighted
  equally (culture-blind). For honesty the country being scored is left out of its own pool
  (leave-one-country-out mean of the other countries' distributions); a cell whose item no other
  country has is absent.
- ``human-N``: the sampling error of N answers. Draw N respondents of the country with probability
  proportional to their weight, with replacement (as personas are drawn), and take the plain
  share of their valid answers; ``n_draws`` independent draws per N, in a ``draw`` column. Score
  each draw and average the metrics over draws (:func:`average_draws`): how far N hard answers
  land from their country. Not a bound: soft persona distributions can beat it.
- ``regression`` / ``regression-all``: a multinomial logistic regression (scikit-learn, lbfgs, L2 C=1) of each target
  item on the value profile, trained leave-country-out (all other countries' respondents,
  weighted by W_WEIGHT) and predicting the held-out country's distribution as the weighted mean
  predicted probability over its respondents (``regression-all``) or over the very respondents
  the personas were built from (``regression``, like for like with the persona methods). Features (``encoding``): ``"numeric"`` (default) = each value item's option position
  scaled to [0, 1] plus a 0/1 missing indicator (missing position set to 0); ``"onehot"`` = one
  column per option plus a missing indicator. Value items in the target's leakage set
  (``catalog.excluded_for``) are dropped from that target's features, as for personas.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from vpersona.data.catalog import Catalog, load_catalog, option_positions
from vpersona.core.seeds import rng
from vpersona.core.distributions import KMAX, from_matrix, to_matrix
from vpersona.evaluate.metrics import METRICS
from vpersona.data.survey import Survey

HUMAN_N = (25, 100, 400)


def uniform_reference(human: pd.DataFrame) -> pd.DataFrame:
    """``method="uniform"`` for every (country, item) of ``human``."""
    K = human["K"].to_numpy(dtype=int)
    P = (np.arange(KMAX)[None, :] < K[:, None]) / K[:, None]
    return from_matrix(human[["country", "item"]].assign(method="uniform"), P, K)


def global_reference(human: pd.DataFrame, *, leave_out: bool = True) -> pd.DataFrame:
    """``method="global"``: equal-country pooled distribution, the scored country left out."""
    P, K = to_matrix(human)
    items = human["item"].to_numpy()
    codes, inverse = np.unique(items, return_inverse=True)
    sums = np.zeros((len(codes), KMAX))
    np.add.at(sums, inverse, P)
    counts = np.bincount(inverse, minlength=len(codes)).astype(float)
    if leave_out:
        n_other = counts[inverse] - 1
        pooled = np.divide(sums[inverse] - P, n_other[:, None], out=np.zeros_like(P), where=n_other[:, None] > 0)
        keep = n_other > 0
    else:
        pooled, keep = sums[inverse] / counts[inverse][:, None], np.ones(len(P), dtype=bool)
    keys = human.loc[keep, ["country", "item"]].assign(method="global")
    return from_matrix(keys, pooled[keep], K[keep])


def _positions(survey: Survey, items, catalog: Catalog, what: str = "items") -> tuple[np.ndarray, pd.DataFrame]:
    """(n_respondents, n_items) option positions (NaN when missing or not an option), and the options.
    ``what`` names the items in the error raised when some are not columns of the survey."""
    absent = [c for c in items if c not in survey.items]
    if absent:
        raise ValueError(f"{what} {absent} are not columns of {survey.label}")
    options = option_positions(items, catalog)
    X = np.full((len(survey.responses), len(items)), np.nan)
    for j, code in enumerate(items):  # a loop over items, each vectorised over respondents
        opts = options[options["item"] == code]
        lookup = pd.Series(opts["pos"].to_numpy(dtype=float), index=opts["code"].to_numpy(dtype=float))
        X[:, j] = survey.responses[code].map(lookup).to_numpy(dtype=float)
    return X, options


def human_sample_distributions(survey: Survey, items, sizes=HUMAN_N, *, n_draws: int = 20, seed: int = 0,
                               catalog: Catalog | None = None) -> pd.DataFrame:
    """``method="human-N"`` rows: distributions of weighted samples of N real respondents.

    One row per (country, item, N, draw); the generator of a (country, N) depends only on
    ``seed``, the country and N. Items with no valid answer in a draw give no row for that draw.
    """
    catalog = catalog or load_catalog()
    items = catalog.check(items)
    X, options = _positions(survey, items, catalog)
    K_items = options.groupby("item")["K"].first()[items].to_numpy()
    country = survey.responses["country"].to_numpy()
    weight = survey.responses["weight"].to_numpy(dtype=float)
    parts = []
    for c in sorted(set(country)):  # per country, vectorised over draws x respondents x items
        rows = np.flatnonzero(country == c)
        w = weight[rows] / weight[rows].sum()
        asked = ~np.isnan(X[rows]).all(axis=0)
        for n in sizes:
            idx = rows[rng(seed, c, n).choice(len(rows), size=(n_draws, n), replace=True, p=w)]
            S = X[idx]  # (draws, n, items)
            valid = ~np.isnan(S)
            flat = (np.arange(n_draws)[:, None, None] * len(items) + np.arange(len(items))[None, None, :]) * KMAX \
                + np.where(valid, S, 0).astype(int)
            counts = np.bincount(flat[valid], minlength=n_draws * len(items) * KMAX)
            counts = counts.reshape(n_draws * len(items), KMAX).astype(float)
            total = counts.sum(axis=1)
            keep = (total > 0) & np.tile(asked, n_draws)
            keys = pd.DataFrame({"country": c, "item": np.tile(items, n_draws),
                                 "method": f"human-{n}", "draw": np.repeat(np.arange(n_draws), len(items))})
            parts.append(from_matrix(keys[keep], counts[keep] / total[keep, None], np.tile(K_items, n_draws)[keep]))
    return pd.concat(parts, ignore_index=True)


def average_draws(cells: pd.DataFrame, metrics=METRICS) -> pd.DataFrame:
    """Scored cells with a ``draw`` column -> one row per cell, metrics averaged over draws."""
    if "draw" not in cells.columns:
        return cells
    metrics = [m for m in metrics if m in cells.columns]
    keys = [c for c in cells.columns if c not in (*metrics, "draw")]
    out = cells.groupby(keys, sort=True, dropna=False)[metrics].mean().reset_index()
    out["n_draws"] = cells.groupby(keys, sort=True, dropna=False).size().to_numpy()
    return out


def value_features(survey: Survey, value_items, *, encoding: str = "numeric",
                   catalog: Catalog | None = None) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Design matrix of the value profile and, per column, (value item, column name)."""
    catalog = catalog or load_catalog()
    value_items = catalog.check(value_items)
    X, options = _positions(survey, value_items, catalog, "value items")
    K = options.groupby("item")["K"].first()[value_items].to_numpy()
    missing = np.isnan(X)
    cols, names = [], []
    if encoding == "numeric":
        cols.append(np.where(missing, 0.0, X / (K - 1)))
        names += [(v, f"{v}_pos") for v in value_items]
    elif encoding == "onehot":
        for j, v in enumerate(value_items):
            cols.append((X[:, [j]] == np.arange(K[j])[None, :]).astype(float))
            names += [(v, f"{v}={k}") for k in range(K[j])]
    else:
        raise ValueError(f"unknown encoding {encoding!r}; expected 'numeric' or 'onehot'")
    cols.append(missing.astype(float))
    names += [(v, f"{v}_missing") for v in value_items]
    return np.hstack(cols), names


def regression_reference(survey: Survey, targets, value_items=None, *, encoding: str = "numeric",
                         sample: pd.DataFrame | None = None, folds: str = "country",
                         max_train_per_country: int | None = None, C: float = 1.0, max_iter: int = 100,
                         tol: float = 1e-3, seed: int = 0, catalog: Catalog | None = None,
                         all_method: str | None = None) -> pd.DataFrame:
    """``method="regression"``: leave-country-out multinomial logistic model of value profile -> target.

    ``value_items``: default the catalog's value items (the ten IW items). ``sample``: optional
    table ``country, respondent`` (e.g. a persona plan's draws; repeats count as multiplicity):
    the held-out distribution is then the mean prediction over those respondents instead of the
    weighted mean over all of the country's respondents. ``folds``: ``"country"`` (one fit per
    held-out country) or ``"zone"`` (one fit per held-out IW cultural zone: fewer fits, and a
    stricter test). ``max_train_per_country``: train on at most that many respondents per country
    (seeded uniform subsample, weights kept), to bound the cost. ``tol``: lbfgs gradient
    tolerance (1e-3 moves mean JSD by < 0.003 against 1e-4 on the SYNTHETIC sample, at half the
    time). ``all_method``: with a ``sample``, also predict from all respondents (weighted) with the
    same fitted models, as rows of that method name (e.g. ``"regression-all"``).
    ``result.attrs["dropped_features"]`` lists the value items removed per target for leakage.
    """
    catalog = catalog or load_catalog()
    targets = catalog.check(targets)
    value_items = catalog.codes("value") if value_items is None else catalog.check(value_items)
    Y, options = _positions(survey, targets, catalog, "target items")
    F, names = value_features(survey, value_items, encoding=encoding, catalog=catalog)
    K_of = options.groupby("item")["K"].first()
    country = survey.responses["country"].to_numpy()
    weight = survey.responses["weight"].to_numpy(dtype=float)
    countries = sorted(set(country))
    if len(countries) < 2:
        raise ValueError("a leave-country-out regression needs respondents from at least two countries")
    fold_of = _folds(countries, folds)
    in_training = _training_subsample(country, max_train_per_country, seed)
    outputs = {"regression": _prediction_weights(survey, sample, weight)}
    if all_method is not None and sample is not None:
        outputs[all_method] = weight
    dropped, parts = {}, []
    for j, target in enumerate(targets):  # one model per (target item, held-out fold)
        leak = catalog.excluded_for(target) & set(value_items)
        dropped[target] = sorted(leak)
        cols = np.array([v not in leak for v, _ in names])
        Xt, y = F[:, cols], Y[:, j]
        has_y = ~np.isnan(y)
        P = {name: np.full((len(countries), KMAX), np.nan) for name in outputs}
        for fold in sorted(set(fold_of.values())):
            held_out = np.isin(country, [c for c in countries if fold_of[c] == fold])
            train = has_y & ~held_out & in_training
            model = _fit(Xt[train], y[train].astype(int), weight[train], C, max_iter, tol)
            for i, c in enumerate(countries):
                held = country == c
                if fold_of[c] != fold or not (has_y & held).any():  # not asked there: no cell
                    continue
                proba = model.predict_proba(Xt[held])
                for name, pred_w in outputs.items():
                    w = pred_w[held]
                    P[name][i] = 0.0
                    P[name][i, model.classes_] = (w @ proba) / w.sum()
        for name, Pn in P.items():
            ok = ~np.isnan(Pn).any(axis=1)
            keys = pd.DataFrame({"country": np.array(countries)[ok], "item": target, "method": name})
            parts.append(from_matrix(keys, Pn[ok], np.full(ok.sum(), int(K_of[target]))))
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(dropped_features=dropped, encoding=encoding, folds=folds)
    return out


def _folds(countries, folds: str) -> dict:
    if folds == "country":
        return {c: c for c in countries}
    if folds == "zone":
        from vpersona.data.countries import zones

        fold_of = zones(countries).to_dict()
        if len(set(fold_of.values())) < 2:
            raise ValueError("folds='zone' needs countries from at least two cultural zones")
        return fold_of
    raise ValueError(f"unknown folds {folds!r}; expected 'country' or 'zone'")


def _training_subsample(country: np.ndarray, max_per_country: int | None, seed: int) -> np.ndarray:
    keep = np.ones(len(country), dtype=bool)
    if max_per_country is None:
        return keep
    for c in sorted(set(country)):
        rows = np.flatnonzero(country == c)
        if len(rows) > max_per_country:
            chosen = rng(seed, c, "train").choice(rows, size=max_per_country, replace=False)
            keep[np.setdiff1d(rows, chosen)] = False
    return keep


def _prediction_weights(survey: Survey, sample: pd.DataFrame | None, weight: np.ndarray) -> np.ndarray:
    if sample is None:
        return weight
    lacking = [c for c in ("country", "respondent") if c not in sample.columns]
    if lacking:
        raise ValueError(f"sample lacks columns {lacking}; expected country, respondent (one row per draw)")
    ids = sample["respondent"]
    if not pd.api.types.is_numeric_dtype(survey.responses.index) and pd.api.types.is_numeric_dtype(ids):
        ids = ids.astype(str)  # ids read back from persona_draws.csv parse as numbers
    counts = ids.value_counts()
    unknown = counts.index.difference(survey.responses.index)
    if len(unknown):
        raise ValueError(f"sample names respondents not in {survey.label}: {list(unknown[:5])}")
    w = counts.reindex(survey.responses.index, fill_value=0).to_numpy(dtype=float)
    sampled_countries = set(sample["country"])
    missing = sorted(set(survey.responses["country"]) - sampled_countries)
    if missing:  # countries without a sample keep their full weighted population
        mask = survey.responses["country"].isin(missing).to_numpy()
        w[mask] = weight[mask]
    return w


def _fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float, max_iter: int, tol: float) -> LogisticRegression:
    """Weighted multinomial logistic regression (lbfgs).

    One BLAS/OpenMP thread: these fits are small, and threads contending on a busy machine made
    them several times slower (measured)."""
    model = LogisticRegression(C=C, max_iter=max_iter, tol=tol, solver="lbfgs")
    with warnings.catch_warnings(), threadpool_limits(1):
        # max_iter bounds the cost; a distribution-level prediction does not need a tighter optimum.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y, sample_weight=w)


def reference_distributions(survey: Survey, human: pd.DataFrame, targets, *, sizes=HUMAN_N, n_draws: int = 20,
                            seed: int = 0, regression: bool = True, catalog: Catalog | None = None,
                            draws: pd.DataFrame | None = None, n_personas: int | None = None,
                            **regression_kwargs) -> pd.DataFrame:
    """All reference rows (uniform, global, human-N, regression) for ``targets`` as one table.

    ``draws``: the respondents the personas were built from (``country, draw, respondent``, the
    run folder's ``data/persona_draws.csv``). With it, ``regression`` predicts from those same
    respondents (like for like with the persona methods) and ``regression-all`` from all of a
    country's respondents; without it, ``regression`` is the all-respondents version.
    ``n_personas`` (default: the number of draws per country in ``draws``) is always added to
    ``sizes``, so ``human-N`` includes the personas' own N.
    """
    human = human[human["item"].isin(list(targets))]
    sizes = sorted(set(sizes) | _persona_sizes(draws, n_personas))
    parts = [uniform_reference(human), global_reference(human),
             human_sample_distributions(survey, targets, sizes, n_draws=n_draws, seed=seed, catalog=catalog)]
    if regression:
        parts.append(regression_reference(survey, targets, catalog=catalog, sample=draws,
                                          all_method="regression-all", **regression_kwargs))
    return pd.concat(parts, ignore_index=True)


def _persona_sizes(draws: pd.DataFrame | None, n_personas: int | None) -> set[int]:
    if n_personas is not None:
        return {int(n_personas)}
    if draws is None:
        return set()
    if "country" not in draws.columns:
        raise ValueError("draws lacks column 'country'; expected persona_draws.csv (country, draw, respondent)")
    return {int(n) for n in draws.groupby("country").size().unique()}
