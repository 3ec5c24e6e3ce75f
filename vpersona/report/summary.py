"""The run's headline: the printed summary and ``summary.json``, built from notebook 04's tables."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vpersona.report.plots import is_reference


def build_summary(run_name: str, info: dict, overall: pd.DataFrame, gaps: pd.DataFrame,
                  divergence: pd.DataFrame, order, *, metric: str, headline_method: str, llm_methods) -> dict:
    """``overall``: one row per method with ``<metric>``, ``<metric>_lo/_hi`` and ``diversity_ratio``."""
    m = overall.set_index("method")
    lead = headline_method if headline_method in m.index else m.loc[list(llm_methods), metric].idxmin()
    tag = "SYNTHETIC respondents; " if info["synthetic"] else ""
    lines = [f"vpersona run {run_name}: {len(info['countries'])} countries x {len(info['target_items'])} questions "
             f"({tag}human targets: {info['human_targets']})",
             f"mean {metric} over (country, question) cells, 95% bootstrap CI over items; "
             "'+T' rows are calibrated on other questions:"]
    for meth in order:
        r = m.loc[meth]
        lines.append(f"  {meth:<18} {r[metric]:.3f} [{r[metric + '_lo']:.3f}, {r[metric + '_hi']:.3f}]"
                     + ("   <- reference" if is_reference(meth) else ""))
    g = gaps.set_index("method")["gap"]
    if lead in g.index:
        lines.append(f"gap (underrepresented - aligned) for {lead}: {g[lead]:+.3f}")
    columns = [metric, metric + "_lo", metric + "_hi", "diversity_ratio"]
    return {"run": run_name, "synthetic": info["synthetic"], "metric": metric, "headline_method": lead,
            "methods": {meth: {k: (None if pd.isna(v) else float(v)) for k, v in m.loc[meth, columns].items()}
                        for meth in order},
            "gap": {k: float(v) for k, v in g.items()},
            "divergence_ratio": {r.method: float(r.divergence_ratio) for r in divergence.itertuples()},
            "n_countries": len(info["countries"]), "n_items": len(info["target_items"]), "headline": lines}


def write_summary(run_dir: str | Path, summary: dict) -> Path:
    out = Path(run_dir) / "summary.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return out
