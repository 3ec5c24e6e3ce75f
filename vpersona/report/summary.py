"""The run's summary: headline levels, paired comparisons, the gap, and the paper's claims as measured.

:func:`build_summary` turns the per-cell score table (``tables/04_cells.csv``) into the printed
headline lines and the ``summary.json`` dict. It ends with one line per claim of the paper, each
with a verdict never stronger than its interval (:func:`vpersona.evaluate.compare.verdict`):
"yes" only when the 95% interval excludes 0 in the claimed direction, "no" when it excludes 0 the
other way, "not shown" otherwise. Claims whose methods are absent from the run are left out.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vpersona.evaluate.compare import paired_difference, verdict, with_diversity_gap
from vpersona.evaluate.crosscultural import gap_intervals
from vpersona.evaluate.metrics import summarise
from vpersona.report.plots import is_reference

UNIT_WORDS = {"items": "items bootstrap", "countries": "countries bootstrap", "both": "items x countries bootstrap",
              "cells": "cells bootstrap (as if independent)"}
GAP_PAIRS = [("value+T", "country"), ("value", "country"), ("value+T", "value"), ("value", "none")]


def default_pairs(methods) -> list[tuple[str, str]]:
    """The comparisons the paper makes, among ``methods``: value vs every other kind (raw and
    calibrated), each calibrated method vs its raw version, each LLM method vs regression."""
    present = list(dict.fromkeys(methods))
    llm = [m for m in present if not is_reference(m)]
    pairs = []
    for cal in ("", "+T"):
        if f"value{cal}" in present:
            pairs += [(f"value{cal}", m) for m in llm if m != f"value{cal}" and m.endswith("+T") == bool(cal)
                      and not m.startswith("value+")]
    pairs += [(m, m[:-2]) for m in llm if m.endswith("+T") and m[:-2] in present]
    if "regression" in present:
        pairs += [(m, "regression") for m in llm]
    return list(dict.fromkeys(pairs))


def default_order(methods) -> list[str]:
    """LLM methods (alphabetical), then regression, regression-all, global, uniform, human-N by N."""
    present = sorted(set(methods))
    fixed = ["regression", "regression-all", "global", "uniform"]
    human = sorted((m for m in present if m.startswith("human-")), key=lambda m: int(m.split("-")[1]))
    return [m for m in present if not is_reference(m)] + [m for m in fixed if m in present] + human


def _fmt(x: float, digits: int = 3) -> str:
    return "nan" if pd.isna(x) else f"{x:+.{digits}f}"


def _claim(text: str, r: dict, label: str, unit_word: str, wins_word: str) -> dict:
    v = verdict(r["lo"], r["hi"])
    line = (f"{text}: {v} (Δ {label} {_fmt(r['mean'])}, 95% CI [{_fmt(r['lo'])}, {_fmt(r['hi'])}], {unit_word}; "
            f"{wins_word} {r['wins']}/{r['n_countries']} countries)")
    return {"claim": text, "verdict": v, **{k: r[k] for k in ("a", "b", "metric", "unit", "mean", "lo", "hi")},
            "wins": r.get("wins"), "n_countries": r.get("n_countries"), "line": line}


def claims(cells: pd.DataFrame, groups: pd.Series | None, *, metric: str = "jsd", unit: str = "items",
           gap_unit: str = "countries", n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """The paper's claims, each a dict with ``claim, verdict, a, b, metric, unit, mean, lo, hi, line``."""
    present = set(cells["method"])
    cells = with_diversity_gap(cells)
    kw = dict(unit=unit, n_boot=n_boot, seed=seed)
    uw, label = UNIT_WORDS[unit], metric.upper() if metric == "jsd" else metric
    out = []

    def lower(a, b, text):
        if {a, b} <= present:
            out.append(_claim(text, paired_difference(cells, a, b, metric=metric, **kw), label, uw, f"{a} wins in"))

    lower("value", "country", "value < country")
    lower("value", "demographic", "value < demographic")
    lower("value+T", "value", "value+T < value (calibration lowers the error)")
    if {"value+T", "value"} <= present:
        r = paired_difference(cells, "value+T", "value", metric="diversity_gap", **kw)
        out.append(_claim("value+T diversity closer to 1 than value (calibration restores diversity)", r,
                          "|ratio-1|", uw, "value+T closer in"))
    pair = next((p for p in GAP_PAIRS if set(p) <= present), None)
    if groups is not None and pair is not None:
        g = gap_intervals(cells, groups, list(pair), [pair], metric=metric, unit=gap_unit, n_boot=n_boot, seed=seed)
        gaps, r = g[g["what"] == "gap"].set_index("a")["estimate"], g[g["what"] == "narrowing"].iloc[0]
        v = verdict(r["lo"], r["hi"])
        text = f"the gap narrows ({pair[0]} vs {pair[1]})"
        line = (f"{text}: {v} (Δ |gap| {_fmt(r['estimate'])}, 95% CI [{_fmt(r['lo'])}, {_fmt(r['hi'])}], "
                f"{UNIT_WORDS[gap_unit]} within groups; gap {pair[0]} {_fmt(gaps[pair[0]])}, {pair[1]} {_fmt(gaps[pair[1]])})")
        out.append({"claim": text, "verdict": v, "a": pair[0], "b": pair[1], "metric": metric, "unit": gap_unit,
                    "mean": float(r["estimate"]), "lo": float(r["lo"]), "hi": float(r["hi"]), "wins": None,
                    "n_countries": int(r["n_aligned"] + r["n_underrepresented"]), "line": line})
    for m in sorted(m for m in present if not is_reference(m)):
        lower(m, "regression", f"{m} < regression")
    return out


def build_summary(cells: pd.DataFrame, groups: pd.Series | None = None, *, run: str, synthetic: bool,
                  human_targets: str = "", order=None, metric: str = "jsd", unit: str = "items",
                  gap_unit: str = "countries", headline_method: str = "value+T", divergence: pd.DataFrame | None = None,
                  n_boot: int = 1000, seed: int = 0) -> tuple[list[str], dict]:
    """Printed headline lines and the ``summary.json`` dict from the per-cell score table.

    ``groups``: aligned/underrepresented per country (:func:`crosscultural.country_groups`), for
    the gap; ``order``: the methods in display order (default: LLM methods, then references);
    ``divergence``: optional per-method divergence ratio table to carry along.
    """
    methods = list(dict.fromkeys(order if order is not None else default_order(cells["method"])))
    levels = summarise(cells, by="method", unit=unit, n_boot=n_boot, seed=seed).set_index("method").loc[methods]
    llm = [m for m in methods if not is_reference(m)]
    lead = headline_method if headline_method in levels.index else (levels.loc[llm, metric].idxmin() if llm else None)
    n_c, n_i = cells["country"].nunique(), cells["item"].nunique()
    tag = "SYNTHETIC respondents; " if synthetic else ""
    lines = [f"vpersona run {run}: {n_c} countries x {n_i} questions ({tag}human targets: {human_targets})",
             f"mean {metric} over (country, question) cells, 95% CI by {UNIT_WORDS[unit]} ({n_i} items); "
             "'+T' rows are calibrated on other questions:"]
    for m in methods:
        r = levels.loc[m]
        lines.append(f"  {m:<18} {r[metric]:.3f} [{r[metric + '_lo']:.3f}, {r[metric + '_hi']:.3f}]"
                     + ("   <- reference" if is_reference(m) else ""))
    pairs = [(a, b) for a, b in default_pairs(methods)]
    paired = [paired_difference(cells, a, b, metric=metric, unit=unit, n_boot=n_boot, seed=seed) for a, b in pairs]
    lines.append(f"paired differences a - b (mean {metric} on shared cells, 95% CI by {UNIT_WORDS[unit]}; "
                 "negative = a lower):")
    for r in paired:
        lines.append(f"  {r['a'] + ' - ' + r['b']:<26} {_fmt(r['mean'])} [{_fmt(r['lo'])}, {_fmt(r['hi'])}]"
                     f"   a lower in {r['wins']}/{r['n_countries']} countries")
    gap_rows = []
    if groups is not None:
        gap_pairs = [p for p in GAP_PAIRS if set(p) <= set(methods)]
        gap = gap_intervals(cells, groups, llm, gap_pairs, metric=metric, unit=gap_unit, n_boot=n_boot, seed=seed)
        gap_rows = gap.to_dict("records")
        if lead is not None:
            r = gap[(gap["what"] == "gap") & (gap["a"] == lead)].iloc[0]
            lines.append(f"gap (underrepresented - aligned) for {lead}: {_fmt(r['estimate'])} [{_fmt(r['lo'])}, "
                         f"{_fmt(r['hi'])}] ({UNIT_WORDS[gap_unit]} within groups; {r['n_aligned']} aligned, "
                         f"{r['n_underrepresented']} underrepresented countries)")
    found = claims(cells, groups, metric=metric, unit=unit, gap_unit=gap_unit, n_boot=n_boot, seed=seed)
    lines.append(("SYNTHETIC respondents: the claims below test the pipeline, not the paper. " if synthetic else "")
                 + "Claims, as measured:")
    lines += [f"  {c['line']}" for c in found]
    keep = [metric, f"{metric}_lo", f"{metric}_hi", "diversity_ratio", "n_cells", "n_items", "n_countries"]
    summary = {"run": run, "synthetic": bool(synthetic), "metric": metric, "unit": unit, "gap_unit": gap_unit,
               "headline_method": lead, "n_countries": int(n_c), "n_items": int(n_i),
               "methods": {m: {k: (int if k.startswith("n_") else _num)(levels.loc[m, k]) for k in keep} for m in methods},
               "paired": paired, "gap": gap_rows, "claims": found, "headline": lines}
    if divergence is not None:
        summary["divergence_ratio"] = {r.method: _num(r.divergence_ratio) for r in divergence.itertuples()}
    return lines, summary


def _num(v):
    return None if pd.isna(v) else float(v)


def write_summary(run_dir: str | Path, summary: dict) -> Path:
    """Write ``summary.json`` into the run folder."""
    out = Path(run_dir) / "summary.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return out
