"""The score tables notebook 04 builds: every method's per-cell scores with the reference rows, in a
fixed method order (LLM methods, then regression, global, uniform and human-N, the sampling error of N answers)."""
from __future__ import annotations

import pandas as pd

from vpersona.evaluate.metrics import METRICS, score
from vpersona.evaluate.references import average_draws

# method pairs the paper compares, (method, baseline): kinds against each other, calibrated against raw
COMPARISONS = (("value", "none"), ("value", "country"), ("value+T", "value"), ("value+country+T", "value+country"))


def score_cells(pred: pd.DataFrame, refs: pd.DataFrame, human: pd.DataFrame) -> pd.DataFrame:
    """Per-cell scores of the LLM predictions and the reference rows (human-N averaged over draws)."""
    cells_ref = score(refs, human)
    cells_ref = average_draws(cells_ref) if "draw" in cells_ref.columns else cells_ref
    cells = pd.concat([score(pred, human), cells_ref], ignore_index=True)[["method", "country", "item", "K", *METRICS]]
    return cells.sort_values(["method", "country", "item"]).reset_index(drop=True)


def comparison_pairs(methods) -> list[tuple[str, str]]:
    """The pairs of :data:`COMPARISONS` whose two methods are both present."""
    have = set(methods)
    return [(m, b) for m, b in COMPARISONS if m in have and b in have]


def group_means(cells: pd.DataFrame, groups: pd.Series, metric: str) -> pd.DataFrame:
    """Mean ``metric`` per method and country group (countries weighted equally)."""
    per_country = (cells.assign(group=cells["country"].map(groups))
                   .groupby(["method", "group", "country"])[metric].mean().reset_index())
    return per_country.groupby(["method", "group"])[metric].mean().reset_index()
