"""Respondent-level survey data as every step sees it, whatever file it came from.

``responses``: one row per respondent, index ``respondent`` (string id), columns ``country``
(ISO alpha-3), ``weight`` (W_WEIGHT; 1.0 when the file has none) and one float column per loaded
item code (valid answer code, NaN when missing). ``missing``: same index and item columns, the
negative WVS code of each missing answer (-1 don't know, -2 no answer, -3 not applicable,
-4 not asked, -5 missing/other) and 0 where the answer is valid, so every kind stays countable.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

MISSING_KINDS = {-1: "dont_know", -2: "no_answer", -3: "not_applicable", -4: "not_asked", -5: "missing"}
META_COLUMNS = ("country", "weight")


@dataclass
class Survey:
    responses: pd.DataFrame
    missing: pd.DataFrame
    source: str
    synthetic: bool = False

    @property
    def items(self) -> list[str]:
        return [c for c in self.responses.columns if c not in META_COLUMNS]

    @property
    def countries(self) -> list[str]:
        return sorted(self.responses["country"].unique())

    @property
    def label(self) -> str:
        """How figures and tables name the data: SYNTHETIC samples say so."""
        return f"SYNTHETIC sample ({self.source})" if self.synthetic else self.source

    def country(self, iso3: str) -> "Survey":
        mask = self.responses["country"] == iso3
        if not mask.any():
            raise ValueError(f"country {iso3!r} has no respondents in {self.label}; "
                             f"countries present: {', '.join(self.countries)}")
        return Survey(self.responses[mask], self.missing[mask], self.source, self.synthetic)

    def missing_counts(self) -> pd.DataFrame:
        """Counts of each missing kind per country and item (long table: country, item, kind, n)."""
        m = self.missing.copy()
        m["country"] = self.responses["country"]
        long = m.melt(id_vars="country", var_name="item", value_name="code")
        long = long[long["code"] < 0]
        long["kind"] = long["code"].map(MISSING_KINDS).fillna("other")
        return (long.groupby(["country", "item", "kind"]).size().rename("n").reset_index())

    def asked(self, iso3: str, item: str) -> bool:
        """False when the item was not asked in that country (every answer is code -4)."""
        codes = self.missing.loc[self.responses["country"] == iso3, item]
        return not (len(codes) > 0 and (codes == -4).all())


def describe(survey: Survey) -> pd.DataFrame:
    """Per country: respondents, weighted respondents, and the share of item answers of each kind.

    Shares are over all (respondent, item) cells of the country: ``valid`` plus one column per
    missing kind (``dont_know``, ``no_answer``, ``not_applicable``, ``not_asked``, ``missing``).
    """
    country = survey.responses["country"]
    codes = survey.missing
    n_items = max(codes.shape[1], 1)
    table = pd.DataFrame({"n": country.groupby(country).size(),
                          "n_weighted": survey.responses["weight"].groupby(country).sum()})
    table["valid"] = (codes == 0).sum(axis=1).groupby(country).sum() / (table["n"] * n_items)
    for code, kind in MISSING_KINDS.items():
        table[kind] = (codes == code).sum(axis=1).groupby(country).sum() / (table["n"] * n_items)
    table.index.name = "country"
    return table
