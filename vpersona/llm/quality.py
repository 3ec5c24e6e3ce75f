"""How usable the model's replies were: mass on the answer labels, refusals, unparseable replies."""
from __future__ import annotations

import pandas as pd


def answer_quality(answers: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Covered-mass quantiles of the answer table and the count of rows per quality flag."""
    mass = {"covered_mass_median": float(answers["covered_mass"].median()),
            "covered_mass_p5": float(answers["covered_mass"].quantile(0.05))}
    flags = answers["flags"].fillna("").astype(str).str.split(";").explode()
    counts = flags[flags != ""].value_counts().rename("rows").rename_axis("flag").reset_index()
    return mass, counts
