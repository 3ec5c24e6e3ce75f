"""Individual-level fidelity: does a persona's answer say something about *its own* respondent?

Aggregate scores compare distributions per (country, item); a method can match them with
personas that all answer alike. Here each persona's **expected answer** (mean option position,
scaled to [0, 1]) is set against the real answer of every respondent behind it (a persona with
multiplicity m stands for m draws, each counted), and the rank agreement is Spearman's rho:

- ``r``: per item, over all the respondents behind the personas of all countries (this includes
  the countries' differences, which the ``country`` kind alone can reproduce);
- ``r_within``: per item, the mean over countries of the within-country Spearman rho (NaN where
  a country's expected answers are all equal, e.g. the ``none`` and ``country`` kinds): the part
  that goes beyond the country mix;
- an ``overall`` row per method: the mean over the ordered items (nominal items have no order).

The ``regression`` row is the same score for a multinomial logistic model of the target on the
value profile trained leave-country-out (:mod:`vpersona.evaluate.references`), predicting each of
the same respondents from their own value answers: what the value profile alone tells about
the person, without an LLM.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from vpersona.calibrate.aggregate import persona_distributions
from vpersona.core.distributions import POSITIONS, to_matrix
from vpersona.data.catalog import Catalog, load_catalog, option_positions
from vpersona.evaluate import references as refs

PERSONA_KEYS = ["persona_id", "country", "kind", "item"]
COLUMNS = ["method", "item", "ordered", "n", "r", "r_within", "n_countries"]


def expected_answers(answers: pd.DataFrame) -> pd.DataFrame:
    """Per (persona, item): the expected option position scaled to [0, 1] (NaN when no valid answer)."""
    P = persona_distributions(answers)
    M, K = to_matrix(P)
    valid = P["n_valid_replicates"].to_numpy() > 0
    expected = np.where(valid, (M @ POSITIONS) / np.maximum(K - 1, 1), np.nan)
    return P[PERSONA_KEYS].assign(expected=expected)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:  # undefined for a constant input
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _score(rows: pd.DataFrame, method: str, ordered: dict) -> pd.DataFrame:
    """rows: item, country, expected, truth (position) -> one row per item + overall."""
    out = []
    for item, g in rows.groupby("item", sort=True):
        within = [_spearman(c["expected"].to_numpy(float), c["truth"].to_numpy(float))
                  for _, c in g.groupby("country", sort=True)]
        within = [w for w in within if not np.isnan(w)]
        out.append({"method": method, "item": item, "ordered": bool(ordered[item]), "n": len(g),
                    "r": _spearman(g["expected"].to_numpy(float), g["truth"].to_numpy(float)),
                    "r_within": float(np.mean(within)) if within else float("nan"), "n_countries": len(within)})
    table = pd.DataFrame(out, columns=COLUMNS)
    o = table[table["item"].map(ordered)]
    overall = {"method": method, "item": "overall", "ordered": True, "n": int(o["n"].sum()), "r": o["r"].mean(),
               "r_within": o["r_within"].mean(), "n_countries": int(o["n_countries"].max()) if len(o) else 0}
    return pd.concat([table, pd.DataFrame([overall])], ignore_index=True)


def _truth_positions(truth: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    lacking = [c for c in ("persona_id", "country", "kind", "item", "answer", "respondent") if c not in truth.columns]
    if lacking:
        raise ValueError(f"truth lacks columns {lacking}; expected the output of "
                         "vpersona.calibrate.mixing.respondent_truth")
    pos = option_positions(sorted(truth["item"].unique()), catalog)
    t = truth.merge(pos[["item", "code", "pos", "K"]], left_on=["item", "answer"], right_on=["item", "code"])
    return t.assign(truth=t["pos"] / (t["K"] - 1))


def persona_fidelity(answers: pd.DataFrame, truth: pd.DataFrame, *, kinds=None,
                     catalog: Catalog | None = None) -> pd.DataFrame:
    """Spearman rho of persona expected answers vs their respondents' answers, per kind and item.

    ``answers``: the grid's answer table; ``truth``: :func:`vpersona.calibrate.mixing.respondent_truth`.
    ``kinds``: persona kinds to score (default: every kind whose name starts with ``value``).
    Returns ``method`` (the kind), ``item`` (+ ``overall``), ``ordered`` (False for nominal items,
    whose rho depends on an arbitrary option order), ``n`` (respondent rows), ``r``,
    ``r_within``, ``n_countries`` (with a defined within-country rho).
    """
    catalog = catalog or load_catalog()
    kinds = sorted(k for k in answers["kind"].unique() if str(k).startswith("value")) if kinds is None else list(kinds)
    exp = expected_answers(answers[answers["kind"].isin(kinds)])
    rows = _truth_positions(truth, catalog).merge(exp, on=PERSONA_KEYS, how="inner")
    ordered = {code: catalog[code].is_ordered for code in rows["item"].unique()}
    parts = [_score(rows[rows["kind"] == k], k, ordered) for k in kinds if (rows["kind"] == k).any()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def regression_expected(survey, targets, respondents, *, value_items=None, folds: str = "country",
                        max_train_per_country: int | None = 300, seed: int = 0,
                        catalog: Catalog | None = None) -> pd.DataFrame:
    """Per (respondent, item): the expected position (scaled to [0, 1]) under the leave-country-out
    regression of :func:`vpersona.evaluate.references.regression_reference` (same features, same
    leakage rule, same folds), for the given ``respondents`` only."""
    catalog = catalog or load_catalog()
    targets = catalog.check(targets)
    value_items = catalog.codes("value") if value_items is None else catalog.check(value_items)
    Y, options = refs._positions(survey, targets, catalog, "target items")
    F, names = refs.value_features(survey, value_items, catalog=catalog)
    K_of = options.groupby("item")["K"].first()
    country = survey.responses["country"].to_numpy()
    weight = survey.responses["weight"].to_numpy(dtype=float)
    fold_of = refs._folds(sorted(set(country)), folds)
    fold = np.array([fold_of[c] for c in country])
    in_training = refs._training_subsample(country, max_train_per_country, seed)
    wanted = survey.responses.index.isin(pd.Index(respondents))
    parts = []
    for j, target in enumerate(targets):
        leak = catalog.excluded_for(target) & set(value_items)
        X, y = F[:, [v not in leak for v, _ in names]], Y[:, j]
        for f in sorted(set(fold[wanted])):
            test = wanted & (fold == f)
            train = ~np.isnan(y) & (fold != f) & in_training
            model = refs._fit(X[train], y[train].astype(int), weight[train], 1.0, 100, 1e-3)
            proba = model.predict_proba(X[test])
            e = proba @ model.classes_.astype(float) / (int(K_of[target]) - 1)
            parts.append(pd.DataFrame({"respondent": survey.responses.index[test], "item": target, "expected": e}))
    return pd.concat(parts, ignore_index=True)


def regression_fidelity(survey, truth: pd.DataFrame, *, kind: str = "value", catalog: Catalog | None = None,
                        **regression_kwargs) -> pd.DataFrame:
    """The :func:`persona_fidelity` table of the ``regression`` reference on the respondents behind
    the ``kind`` personas (each draw counted as for the personas)."""
    catalog = catalog or load_catalog()
    t = _truth_positions(truth[truth["kind"] == kind], catalog)
    exp = regression_expected(survey, sorted(t["item"].unique()), t["respondent"].unique(), catalog=catalog,
                              **regression_kwargs)
    rows = t.merge(exp, on=["respondent", "item"], how="inner")
    ordered = {code: catalog[code].is_ordered for code in rows["item"].unique()}
    return _score(rows, "regression", ordered)


def fidelity_table(answers: pd.DataFrame, truth: pd.DataFrame, survey=None, *, regression: bool = True,
                   catalog: Catalog | None = None, **regression_kwargs) -> pd.DataFrame:
    """Value personas and (with ``survey``) the regression reference, one table."""
    parts = [persona_fidelity(answers, truth, catalog=catalog)]
    if regression and survey is not None and survey.responses["country"].nunique() >= 2:
        parts.append(regression_fidelity(survey, truth, catalog=catalog, **regression_kwargs))
    return pd.concat(parts, ignore_index=True)
