"""Weighted, seeded sampling of respondents per country, among those whose value profile is usable."""
from __future__ import annotations

import numpy as np
import pandas as pd

from vpersona.core.seeds import rng
from vpersona.data.survey import Survey

MISSING_RULES = ("drop_sentence", "skip_respondent")


def usable_profiles(survey: Survey, value_items, missing: str = "drop_sentence") -> pd.Series:
    """Boolean Series (index respondent): whose value profile may be turned into a persona.

    Counted per country over the value items *asked* there (an item not asked in a country, all
    code -4, is no fault of its respondents and has no sentence for anyone there):
    ``drop_sentence``: at least half of those items answered (unanswered ones get no sentence);
    ``skip_respondent``: every one of them answered.
    """
    if missing not in MISSING_RULES:
        raise ValueError(f"missing={missing!r}; expected one of {MISSING_RULES}")
    value_items = list(value_items)
    absent = [c for c in value_items if c not in survey.responses.columns]
    if absent:
        raise ValueError(f"value item(s) {', '.join(absent)} are not columns of {survey.label}; "
                         f"load them with the survey (items present: {', '.join(survey.items)})")
    usable = pd.Series(False, index=survey.responses.index)
    for country in survey.countries:
        rows = survey.responses["country"] == country
        asked = [i for i in value_items if survey.asked(country, i)]
        answered = survey.responses.loc[rows, asked].notna().sum(axis=1)
        needed = len(asked) if missing == "skip_respondent" else (len(asked) + 1) // 2
        usable[rows] = (answered >= needed) & (len(asked) > 0)
    return usable


def sample_respondents(survey: Survey, country: str, n: int, seed: int, *, value_items,
                       missing: str = "drop_sentence") -> pd.Series:
    """Draw ``n`` respondent ids of ``country`` with probability proportional to ``weight``, with
    replacement, among respondents with usable value profiles.

    Usable (``missing``): ``"drop_sentence"`` (default) keeps respondents who answered at least
    half of ``value_items``, their unanswered items simply get no sentence; ``"skip_respondent"``
    keeps only respondents who answered all of them. The generator is
    ``vpersona.core.seeds.rng(seed, country)`` (one stream per country), so the same inputs give the
    same draw whatever other countries are sampled. Returns a Series named ``respondent`` indexed
    by ``draw`` (0..n-1).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r}: expected a positive number of personas per country")
    sub = survey.country(country)
    usable = usable_profiles(sub, value_items, missing)
    eligible = sub.responses[usable]
    if eligible.empty:
        raise ValueError(f"no respondent of {country} in {survey.label} has a usable value profile "
                         f"(missing={missing!r}, {len(sub.responses)} respondents, value items "
                         f"{', '.join(value_items)})")
    w = eligible["weight"].to_numpy(dtype=float)
    if np.isnan(w).any() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights of {country} in {survey.label} must be non-negative numbers with a "
                         f"positive sum")
    idx = rng(seed, country).choice(len(eligible), size=int(n), replace=True, p=w / w.sum())
    return pd.Series(eligible.index.to_numpy()[idx], name="respondent",
                     index=pd.RangeIndex(int(n), name="draw"))
