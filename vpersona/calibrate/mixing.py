"""Persona mixing: each persona shrunk toward its cell's population mix, fitted on the individual level.

each persona's distribution is shrunk toward the
population mix of its cell, p_i -> (1-alpha) p_i + alpha m. The multiplicity-weighted aggregate m
is unchanged (it is the mean of the p_i), but each simulated individual answers more diversely.
Because the aggregate is unchanged, alpha cannot be fitted on aggregate distances (nor on the
JSD of answers sampled one per persona, whose expectation is the aggregate too); it is fitted on
the *individual* level, against the real answers of the respondents the personas were built from.

Like the temperature it is fitted on some cells and applied to others with
:func:`vpersona.calibrate.splits.cross_fit`; :func:`mixing_loglik` scores the held-out folds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator

from vpersona.calibrate.aggregate import CELL_KEYS, aggregate, persona_distributions, valid_rows
from vpersona.core.distributions import normalise, prob_columns, to_matrix
from vpersona.data.catalog import Catalog, load_catalog, option_positions


class PersonaMixing(BaseEstimator):
    """Shrink each persona's distribution toward its cell's population mix by ``alpha`` in [0, 1].

    ``apply(answers)`` works on the grid's answer table (see :mod:`vpersona.calibrate.aggregate`); the
    aggregate of the result equals the aggregate of the input. ``fit(answers, truth)`` chooses
    alpha from the real answers of the respondents behind the personas: ``truth`` has columns
    ``persona_id, item, answer`` (WVS answer code; one row per respondent, so a persona with
    multiplicity m has up to m rows) and optional ``weight``. The objective (``"loglik"``) is the
    mean log-probability each respondent's persona gives to the answer the respondent really gave:
    a proper scoring rule, so an overconfident persona is penalised and the fitted alpha matches
    the individual-level diversity. (A spread-skill objective, mean predicted variance = mean
    squared error of the predicted mean, was tried and dropped: it is satisfied at alpha = 1 for
    any data, since the population mix is itself spread-skill calibrated, so it does not
    identify alpha.) With :func:`vpersona.calibrate.splits.cross_fit`, pass ``truth`` where a temperature takes the human table.
    """

    OBJECTIVES = ("loglik",)

    def __init__(self, alpha: float | None = None, *, objective: str = "loglik", catalog: Catalog | None = None):
        self.alpha, self.objective, self.catalog = alpha, objective, catalog

    @property
    def params(self) -> dict:
        return {"alpha": self.alpha_, "objective": self.objective}

    @staticmethod
    def _mix(answers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P, M, valid): each row's distribution, its cell's population mix, and validity."""
        keys = list(CELL_KEYS)
        pop = aggregate(answers)
        row = pd.MultiIndex.from_frame(pop[keys]).get_indexer(pd.MultiIndex.from_frame(answers[keys]))
        valid = valid_rows(answers)
        P, _ = to_matrix(answers)
        M, _ = to_matrix(pop)
        return normalise(P), M[row], valid

    def transform(self, answers: pd.DataFrame) -> pd.DataFrame:
        """Mixed copy of the answer table; its aggregate equals the input's."""
        if not hasattr(self, "alpha_"):
            raise RuntimeError("PersonaMixing is not fitted: call fit() first")
        alpha = self.alpha_
        out = answers.reset_index(drop=True).copy()
        P, M, valid = self._mix(out)
        mixed = (1 - alpha) * P + alpha * M
        cols = prob_columns()
        out.loc[valid, cols] = mixed[valid][:, : len(cols)]
        return out

    def fit(self, answers: pd.DataFrame, truth: pd.DataFrame) -> "PersonaMixing":
        """Learn ``alpha_`` from the truth rows that match a persona answer of ``answers``."""
        if self.objective not in self.OBJECTIVES:
            raise ValueError(f"unknown persona-mixing objective {self.objective!r}; expected one of {self.OBJECTIVES}")
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {self.alpha}")
        if self.alpha is not None:
            self.alpha_ = self.alpha
            return self
        lacking = [c for c in ("persona_id", "item", "answer") if c not in truth.columns]
        if lacking:
            raise ValueError(f"truth table lacks columns {lacking}; expected persona_id, item, answer[, weight]")
        personas = persona_distributions(answers)
        personas = personas[personas["n_valid_replicates"] > 0].reset_index(drop=True)
        P, M, _ = self._mix(personas.assign(replicate=0))
        pos = option_positions(sorted(truth["item"].unique()), self.catalog or load_catalog())
        t = truth.merge(pos[["item", "code", "pos"]], left_on=["item", "answer"], right_on=["item", "code"])
        # match on every persona key truth has: the same text can be a persona of several countries
        keys = [k for k in ("persona_id", "country", "kind", "item") if k in t.columns]
        index = pd.MultiIndex.from_frame(personas[keys])
        if not index.is_unique:
            raise ValueError(f"truth matches personas only on {keys}, which repeat across countries or kinds; "
                             "give truth the columns country and kind too")
        row = index.get_indexer(pd.MultiIndex.from_frame(t[keys]))
        t, row = t[row >= 0], row[row >= 0]
        if len(t) == 0:
            raise ValueError("no truth row matches a persona with a valid answer (persona_id, item)")
        w = t["weight"].to_numpy(float) if "weight" in t.columns else np.ones(len(t))
        y = t["pos"].to_numpy(int)
        Pr, Mr = P[row], M[row]
        py, my = Pr[np.arange(len(y)), y], Mr[np.arange(len(y)), y]

        def loss(a):
            return -np.sum(w * np.log(np.maximum((1 - a) * py + a * my, 1e-12))) / w.sum()

        self.alpha_ = float(minimize_scalar(loss, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-8}).x)
        return self


def respondent_truth(pairs: pd.DataFrame, personas: pd.DataFrame, leakage: pd.DataFrame,
                     survey) -> pd.DataFrame:
    """The answers the respondents behind each persona really gave, for :meth:`PersonaMixing.fit`.

    ``pairs``, ``personas``, ``leakage``: the persona plan's tables (each pair is asked of the
    persona variant without its target's leakage items, and the variant lists its respondents,
    one entry per draw). Returns persona_id, country, kind, item, answer (WVS code), weight and
    respondent (id); a respondent who did not answer the item gives no row.
    """
    dropped = {(r.item, r.kind): r.dropped_items for r in leakage.itertuples(index=False) if isinstance(r.dropped_items, str)}
    wanted = pairs.assign(excluded=[dropped.get((i, k), "") for i, k in zip(pairs["item"], pairs["kind"])])
    members = personas[["persona_id", "country", "kind", "excluded", "respondents"]].drop_duplicates()
    members = members.assign(excluded=members["excluded"].fillna(""))  # "" read back from CSV may be NaN
    rows = wanted.merge(members, on=["persona_id", "country", "kind", "excluded"], how="inner", validate="many_to_one")
    rows = rows.assign(respondent=rows["respondents"].str.split(";")).explode("respondent")
    responses = survey.responses
    items = [c for c in rows["item"].unique() if c in responses.columns]
    r = responses.index.get_indexer(rows["respondent"])
    c = pd.Index(items).get_indexer(rows["item"])
    ok = (r >= 0) & (c >= 0)
    values = np.full(len(rows), np.nan)
    values[ok] = responses[items].to_numpy(dtype=float)[r[ok], c[ok]]
    weights = np.where(r >= 0, responses["weight"].to_numpy(dtype=float)[np.maximum(r, 0)], np.nan)
    out = pd.DataFrame({"persona_id": rows["persona_id"].to_numpy(), "country": rows["country"].to_numpy(),
                        "kind": rows["kind"].to_numpy(), "item": rows["item"].to_numpy(), "answer": values,
                        "weight": weights, "respondent": rows["respondent"].to_numpy()})
    return out[~np.isnan(out["answer"])].astype({"answer": int}).reset_index(drop=True)


def mean_loglik(answers: pd.DataFrame, truth: pd.DataFrame, *, catalog: Catalog | None = None) -> float:
    """Weighted mean log-probability the personas of ``answers`` give to their respondents' real answers."""
    P = persona_distributions(answers)
    pos = option_positions(sorted(truth["item"].unique()), catalog or load_catalog())
    t = truth.merge(pos[["item", "code", "pos"]], left_on=["item", "answer"], right_on=["item", "code"])
    keys = ["persona_id", "country", "kind", "item"]
    row = pd.MultiIndex.from_frame(P[keys]).get_indexer(pd.MultiIndex.from_frame(t[keys]))
    M, _ = to_matrix(P)
    ok = row >= 0
    p = M[row[ok], t["pos"].to_numpy(int)[ok]]
    w = t["weight"].to_numpy(float)[ok]
    if w.sum() <= 0:
        raise ValueError("no truth row matches a persona answer (persona_id, country, kind, item)")
    return float(np.sum(w * np.log(np.maximum(p, 1e-12))) / w.sum())


def mixing_loglik(answers: pd.DataFrame, mixed: pd.DataFrame, truth: pd.DataFrame, params: pd.DataFrame,
                  *, catalog: Catalog | None = None) -> pd.DataFrame:
    """Held-out score of persona mixing, one row per (kind, fold) of :func:`cross_fit`'s output:
    the mean log-likelihood of the respondents' real answers under the raw and the mixed personas."""
    rows = []
    for (kind, fold), part in (mixed.groupby(["kind", "fold"], sort=True) if len(mixed) else []):
        cells = part[["country", "item"]].drop_duplicates()
        raw = answers[answers["kind"] == kind].merge(cells, on=["country", "item"])
        t = truth[truth["kind"] == kind].merge(cells, on=["country", "item"])
        alpha = params.loc[(params["kind"] == kind) & (params["fold"] == fold), "alpha"].iloc[0]
        rows.append({"kind": kind, "fold": fold, "alpha": alpha, "n_answers": len(t),
                     "loglik_personas": mean_loglik(raw, t, catalog=catalog),
                     "loglik_mixed": mean_loglik(part.drop(columns="fold"), t, catalog=catalog)})
    return pd.DataFrame(rows, columns=["kind", "fold", "alpha", "n_answers", "loglik_personas", "loglik_mixed"])

