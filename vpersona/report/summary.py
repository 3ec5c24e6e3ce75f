"""The run's summary: headline levels, paired comparisons, the gap, and the paper's claims as measured.

:func:`build_summary` turns the per-cell score table (``tables/04_cells.csv``) into the printed
headline lines and the ``summary.json`` dict. It ends with one line per claim of the paper, in
two blocks. The *primary* claims (:data:`PRIMARY`: value < country, value+T < value, the gap
narrows) are one family: "yes" only when the Holm-adjusted p-value is below 5% with the
difference in the claimed direction, "no" when below 5% the other way, "not shown" otherwise, so
the chance of any false "yes"/"no" among them stays at 5%. The gap gets "no verdict" (and no test)
when a group has fewer than MIN_GAP_COUNTRIES countries. Every other line is *exploratory*: its
own 95% interval (:func:`vpersona.evaluate.compare.verdict`), no correction for how many there
are. Claims whose methods are absent from the run are left out.
"""
from __future__ import annotations

import json
from math import comb
from pathlib import Path

import pandas as pd

from vpersona.evaluate.compare import holm, paired_difference, verdict, with_diversity_gap
from vpersona.evaluate.crosscultural import MIN_GAP_COUNTRIES, gap_intervals
from vpersona.evaluate.metrics import summarise
from vpersona.report.plots import is_reference

UNIT_WORDS = {"items": "bootstrap-t over items", "countries": "bootstrap-t over countries",
              "both": "items x countries bootstrap", "cells": "bootstrap-t over cells (as if independent)"}
GAP_WORDS = {"countries": "Welch t over countries"}  # unit words of the gap's interval
# The claims the run is about; their verdicts are Holm-corrected together. Every other line is exploratory.
PRIMARY = ("value < country", "value+T < value", "the gap narrows")
ALPHA = 0.05
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
            "p": r.get("p"), "wins": r.get("wins"), "n_countries": r.get("n_countries"), "line": line}


def _gap_claim(cells, groups, pair, metric, gap_unit, n_boot, seed) -> dict:
    """The gap-narrowing claim; "no verdict" (and no p, so outside the Holm family) below
    MIN_GAP_COUNTRIES countries in either group."""
    g = gap_intervals(cells, groups, list(pair), [pair], metric=metric, unit=gap_unit, n_boot=n_boot, seed=seed)
    gaps, r = g[g["what"] == "gap"].set_index("a")["estimate"], g[g["what"] == "narrowing"].iloc[0]
    text = f"the gap narrows ({pair[0]} vs {pair[1]})"
    n_a, n_u = int(r["n_aligned"]), int(r["n_underrepresented"])
    gap_words = f"gap {pair[0]} {_fmt(gaps[pair[0]])}, {pair[1]} {_fmt(gaps[pair[1]])}"
    out = {"claim": text, "a": pair[0], "b": pair[1], "metric": metric, "unit": gap_unit,
           "mean": float(r["estimate"]), "wins": None, "n_countries": n_a + n_u}
    if min(n_a, n_u) < MIN_GAP_COUNTRIES:
        return {**out, "verdict": "no verdict", "lo": None, "hi": None, "p": None,
                "line": f"{text}: no verdict (Δ |gap| {_fmt(r['estimate'])}; {gap_words}): {few_countries(n_a, n_u)}"}
    v = verdict(r["lo"], r["hi"])
    return {**out, "verdict": v, "lo": float(r["lo"]), "hi": float(r["hi"]), "p": _num(r["p"]),
            "line": (f"{text}: {v} (Δ |gap| {_fmt(r['estimate'])}, 95% CI [{_fmt(r['lo'])}, {_fmt(r['hi'])}], "
                     f"{GAP_WORDS.get(gap_unit, UNIT_WORDS[gap_unit])}, {n_a} aligned / {n_u} underrepresented; "
                     f"{gap_words}{permutation_caveat(n_a, n_u)})")}


def few_countries(n_aligned: int, n_under: int) -> str:
    """Why a gap over fewer than MIN_GAP_COUNTRIES countries in a group gets no interval and no verdict."""
    return (f"only {n_aligned} aligned and {n_under} underrepresented countries; Welch's interval needs "
            f"{MIN_GAP_COUNTRIES} per group")


def permutation_caveat(n_aligned: int, n_under: int) -> str:
    """With few countries no distribution-free test can reach 5%: say so beside the Welch verdict."""
    relabel = comb(n_aligned + n_under, n_aligned)
    if 2 / relabel < ALPHA:
        return ""
    return (f"; an exact permutation test over these countries has only {relabel} relabellings (smallest "
            f"two-sided p 2/{relabel}), so this verdict rests on the t approximation")


def _holm_verdict(c: dict, p_holm: float) -> str:
    if p_holm < ALPHA:
        return "yes" if c["mean"] < 0 else "no"
    return "not shown"


def claims(cells: pd.DataFrame, groups: pd.Series | None, *, metric: str = "jsd", unit: str = "items",
           gap_unit: str = "countries", n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """The paper's claims, each a dict with ``claim, kind, verdict, a, b, metric, unit, mean, lo, hi,
    p, line``. ``kind`` "primary" (:data:`PRIMARY`: their verdicts from Holm-adjusted p-values,
    ``p_holm``, family-wise error 5% over the primary claims that have a p-value) or
    "exploratory" (verdict from the claim's own 95% interval, no correction)."""
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
        out.append(_gap_claim(cells, groups, pair, metric, gap_unit, n_boot, seed))
    for m in sorted(m for m in present if not is_reference(m)):
        lower(m, "regression", f"{m} < regression")
    primary = [c for c in out if c["claim"].split(" (")[0] in PRIMARY]
    tested = [c for c in primary if c["p"] is not None and not pd.isna(c["p"])]
    for c, q in zip(tested, holm([c["p"] for c in tested])):
        c["p_holm"] = float(q)
        c["verdict"] = _holm_verdict(c, q)
        head, rest = c["line"].split(": ", 1)
        c["line"] = f"{head}: {c['verdict']}{rest[rest.index(' ('):-1]}; p {c['p']:.3f}, Holm p {q:.3f})"
    for c in out:
        c["kind"] = "primary" if c in primary else "exploratory"
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
                 "negative = a lower; exploratory):")
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
            head = f"gap (underrepresented - aligned) for {lead}: {_fmt(r['estimate'])}"
            if min(r["n_aligned"], r["n_underrepresented"]) < MIN_GAP_COUNTRIES:
                lines.append(f"{head}, no interval: {few_countries(r['n_aligned'], r['n_underrepresented'])}")
            else:
                lines.append(f"{head} [{_fmt(r['lo'])}, {_fmt(r['hi'])}] ({GAP_WORDS.get(gap_unit, UNIT_WORDS[gap_unit])}"
                             f"; {r['n_aligned']} aligned, {r['n_underrepresented']} underrepresented countries)")
    found = claims(cells, groups, metric=metric, unit=unit, gap_unit=gap_unit, n_boot=n_boot, seed=seed)
    primary = [c for c in found if c["kind"] == "primary"]
    n_tested = sum("p_holm" in c for c in primary)
    lines.append(("SYNTHETIC respondents: the claims below test the pipeline, not the paper. " if synthetic else "")
                 + f"Primary claims, Holm-corrected over the {n_tested} with a test (family-wise error 5%):")
    lines += [f"  {c['line']}" for c in primary]
    lines.append(f"Exploratory ({len(found) - len(primary)} lines and the {len(paired)} paired differences above: "
                 "each its own 95% interval, no correction; not claims):")
    lines += [f"  {c['line']}" for c in found if c["kind"] == "exploratory"]
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
