"""The persona plan's tables in a run folder (``data/personas.csv``, ``pairs.csv``,
``persona_draws.csv``, ``leakage.csv``), written and read back with the same column types.

Respondent ids are text (WVS ``D_INTERVIEW``): a persona built from one respondent has
``respondents = "752070001"``, which a plain ``pd.read_csv`` would read back as an integer (and
one with a leading zero as a different id), so every reader goes through :func:`read_plan_table`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

PLAN_FILES = {"personas": "personas", "pairs": "pairs", "draws": "persona_draws", "leakage": "leakage"}
# columns that are text even when every value looks like a number; absent ones are ignored by pandas
TEXT_COLUMNS = ("respondents", "respondent", "persona_id", "country", "kind", "item", "excluded",
                "dropped_items", "text")


def write_plan(plan, data_dir: str | Path) -> dict[str, Path]:
    """Write the plan's four tables into ``data_dir``; return name -> path."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for attr, stem in PLAN_FILES.items():
        out[stem] = data_dir / f"{stem}.csv"
        getattr(plan, attr).to_csv(out[stem], index=False)
    return out


def read_plan_table(path: str | Path) -> pd.DataFrame:
    """One plan table with respondent ids and other text columns as strings ("" stays "")."""
    return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False)
