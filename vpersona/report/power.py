"""The power notebook's helpers: the planned design read from a run folder, the power curve figure,
and the cost of the real run at each size. All power numbers are SIMULATED (not LLM results)."""
from __future__ import annotations

from importlib import resources

import matplotlib.pyplot as plt
import pandas as pd

from vpersona.evaluate.power import Design, design_cost

EXAMPLE_PRICES = "resources/prices.example.yaml"


def planned_design(info: dict, simulation: dict, compare=("value", "country")) -> Design:
    """The design of a run: countries and questions from notebook 01 (``01_data.json``), persona
    kinds, personas per country, estimator and option order from notebook 02
    (``02_simulation.json``); the compared kinds are added if the run did not ask them."""
    kinds = list(dict.fromkeys([*simulation["persona_kinds"], *compare]))
    return Design(countries=tuple(info["countries"]), items=tuple(info["target_items"]),
                  n_personas=int(simulation["n_personas"]), kinds=tuple(kinds),
                  estimator=simulation.get("estimator", "logprobs"), order=simulation.get("order", "fixed"))


def price_table(path: str | None) -> tuple[str, bool]:
    """The price table to use and whether it is the bundled EXAMPLE (not authoritative)."""
    if path:
        return str(path), False
    return str(resources.files("vpersona").joinpath(EXAMPLE_PRICES)), True


def cost_by_size(design: Design, sizes, *, model: str, prices: str | None) -> pd.DataFrame:
    """Prompts, tokens and dollars of the real run of ``design`` at each personas-per-country size."""
    table, example = price_table(prices)
    rows = []
    for n in sizes:
        c = design_cost(design.with_(n_personas=int(n)), model=model, prices=table)
        rows.append({"n_personas": int(n), "prompts": c["n_prompts"], "prompt_tokens": round(c["prompt_tokens"]),
                     "usd": c["total_usd"], "model": model, "prices": "EXAMPLE table" if example else table})
    return pd.DataFrame(rows)


def power_figure(curve: pd.DataFrame, *, planned: int | None = None, title: str, level: float = 0.8):
    """Power (share of simulated runs detecting the difference) against personas per country, one
    line per world, with exact binomial 95% intervals; dashed: the ``level`` usually asked for."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for name, d in curve.groupby("effect", sort=False):
        d = d.sort_values("n_personas")
        label = f"{name} (mean difference at N={d['n_personas'].iloc[-1]}: {d['mean_difference'].iloc[-1]:+.3f})"
        ax.errorbar(d["n_personas"], d["power"], yerr=[d["power"] - d["power_lo"], d["power_hi"] - d["power"]],
                    marker="o", capsize=3, label=label)
    ax.axhline(level, color="gray", ls="--", lw=1)
    if planned:
        ax.axvline(planned, color="firebrick", ls=":", lw=1, label=f"this run: N = {planned}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(curve["n_personas"].unique()), [str(n) for n in sorted(curve["n_personas"].unique())])
    ax.set(xlabel="personas per country (N)", ylabel="power: P(paired 95% interval below 0)", ylim=(-0.03, 1.03),
           title=title)
    ax.legend(fontsize=8, loc="lower right")
    return fig
