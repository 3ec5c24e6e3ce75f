"""Aggregation: persona answer distributions -> one predicted population distribution per cell.

Input is the grid's answer table, one row per (persona, item, replicate): ``persona_id, country,
kind, item, multiplicity, replicate, K, p1..p10[, covered_mass, flags]``. A row whose
distribution is missing (NaN in p1..pK, e.g. a refusal or an unparseable answer, or all zero) is
*excluded and counted*, never imputed.

1. Replicates of the same persona and item are averaged (valid replicates only).
2. The cell's distribution (country, item, kind) is the multiplicity-weighted mean of its
   personas' distributions: identical persona texts were queried once and stand for
   ``multiplicity`` sampled respondents (docs/method.md, section 3).

When the table has the grid's ``answer_weight`` column (< 1 for replies below the estimator's
``min_mass`` under ``LOW_MASS: weight``, 0 for dropped ones), replicates are averaged with that
weight and a persona's weight in its cell is its multiplicity times its mean answer weight.

``n_personas`` counts the sampled personas of the cell (multiplicities summed, so duplicates
count), ``n_valid_personas`` those with at least one valid replicate, ``n_distinct_personas`` the
distinct persona ids. A cell with no valid persona keeps its row with NaN probabilities.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from vpersona.core.distributions import KMAX, from_matrix, prob_columns

PERSONA_KEYS = ("persona_id", "country", "kind", "item")
CELL_KEYS = ("country", "item", "kind")


def valid_rows(table: pd.DataFrame) -> np.ndarray:
    """True where p1..pK are all finite and sum to more than 0."""
    cols = [c for c in prob_columns() if c in table.columns]
    raw = table[cols].to_numpy(dtype=float)
    inside = np.arange(len(cols))[None, :] < table["K"].to_numpy(dtype=int)[:, None]
    has_nan = (np.isnan(raw) & inside).any(axis=1)
    mass = np.where(inside, np.nan_to_num(raw), 0.0).sum(axis=1)
    return ~has_nan & (mass > 0)


def _check(answers: pd.DataFrame) -> None:
    need = [*PERSONA_KEYS, "multiplicity", "K", "p1"]
    lacking = [c for c in need if c not in answers.columns]
    if lacking:
        raise ValueError(f"answer table lacks columns {lacking}; expected the grid output "
                         f"({', '.join(need)}, ..., p{KMAX})")
    if (answers["multiplicity"] <= 0).any():
        raise ValueError("answer table has multiplicity <= 0; each persona stands for >= 1 respondent")
    if answers.groupby(list(PERSONA_KEYS))["multiplicity"].nunique().gt(1).any():
        raise ValueError("a persona has different multiplicities across replicates of one item")


def persona_distributions(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per (persona_id, country, kind, item): replicates averaged over valid ones.

    Columns: persona keys, ``multiplicity``, ``K``, ``p1..p10`` (NaN when no replicate was valid),
    ``n_replicates``, ``n_valid_replicates`` and the mean ``covered_mass`` if the input has one.
    """
    _check(answers)
    keys = list(PERSONA_KEYS)
    cols = prob_columns()
    df = answers.reset_index(drop=True).copy()
    for c in cols:
        if c not in df.columns:
            df[c] = 0.0
    df["_valid"] = valid_rows(df)
    df[cols] = df[cols].fillna(0.0).where(df["_valid"], np.nan)
    agg = {"multiplicity": ("multiplicity", "first"), "K": ("K", "first"),
           "n_replicates": ("_valid", "size"), "n_valid_replicates": ("_valid", "sum")}
    if "covered_mass" in df.columns:
        df["covered_mass"] = df["covered_mass"].where(df["_valid"])
        agg["covered_mass"] = ("covered_mass", "mean")
    weighted = "answer_weight" in df.columns
    if weighted:
        df["answer_weight"] = df["answer_weight"].where(df["_valid"])
        agg["answer_weight"] = ("answer_weight", "mean")
        df[cols] = df[cols].mul(df["answer_weight"], axis=0)
    grouped = df.groupby(keys, sort=True)
    out = grouped.agg(**agg)
    out[cols] = grouped[cols].mean()  # pandas' mean skips NaN: averages valid replicates only
    if weighted:  # weighted mean over valid replicates = mean(w p) / mean(w)
        out[cols] = out[cols].div(out["answer_weight"].where(out["answer_weight"] > 0), axis=0)
    return out.reset_index()


def aggregate(answers: pd.DataFrame) -> pd.DataFrame:
    """Predicted distribution per (country, item, kind): multiplicity-weighted mean of personas.

    Returns ``country, item, kind, K, p1..p10, n_personas, n_valid_personas,
    n_distinct_personas`` (+ ``covered_mass``, the multiplicity-weighted mean over valid personas,
    when the input has it).
    """
    personas = persona_distributions(answers)
    cols = prob_columns()
    valid = personas["n_valid_replicates"] > 0
    w = personas["multiplicity"].to_numpy(dtype=float)
    aw = personas["answer_weight"].fillna(0.0).to_numpy() if "answer_weight" in personas.columns else np.ones(len(w))
    valid &= aw > 0
    wv = np.where(valid, w, 0.0)  # respondents the valid personas stand for
    ww = wv * aw  # their weight in the cell's mean
    weighted = personas[cols].fillna(0.0).to_numpy() * ww[:, None]
    frame = personas[list(CELL_KEYS) + ["K"]].copy()
    frame[cols] = weighted
    frame["n_personas"] = w
    frame["n_valid_personas"] = wv
    frame["_weight"] = ww
    frame["n_distinct_personas"] = 1
    if "covered_mass" in personas.columns:
        frame["covered_mass"] = personas["covered_mass"].fillna(0.0).to_numpy() * wv
    if personas.groupby(list(CELL_KEYS))["K"].nunique().gt(1).any():
        raise ValueError("personas of one (country, item, kind) disagree on K")
    sums = frame.groupby(list(CELL_KEYS), sort=True).agg(
        {"K": "first", **{c: "sum" for c in frame.columns if c not in (*CELL_KEYS, "K")}}).reset_index()
    n_valid = sums["n_valid_personas"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        P = sums[cols].to_numpy() / sums["_weight"].to_numpy()[:, None]
    P[n_valid == 0] = np.nan
    out = from_matrix(sums[list(CELL_KEYS)], P, sums["K"])
    out.loc[n_valid == 0, cols] = np.nan
    for c in ("n_personas", "n_valid_personas", "n_distinct_personas"):
        out[c] = sums[c].to_numpy(dtype=int)
    if "covered_mass" in sums.columns:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["covered_mass"] = sums["covered_mass"].to_numpy() / n_valid
    return out
