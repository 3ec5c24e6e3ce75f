"""Figures that stand alone: titled, labelled, saved as PNG named after their notebook, with a
SYNTHETIC footer when the respondent data is the bundled synthetic sample and a SIMULATED footer
when the answers come from the simulated backend."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

SYNTHETIC_FOOTER = ("SYNTHETIC respondent data (vpersona's bundled sample): value profiles and their link to "
                    "answers are simulated; human targets are real WVS-7 marginals.")
SIMULATED_FOOTER = ("SIMULATED answers (vpersona's simulated backend, BACKEND simulated): a stand-in with known "
                    "knobs, not an LLM; these are not LLM results.")
REFERENCE_METHODS = ("uniform", "global", "regression", "regression-all")


def setup() -> None:
    """Plotting defaults shared by the notebooks."""
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 110, "savefig.bbox": "tight"})


def save_fig(fig, run_dir: str | Path, name: str, *, synthetic: bool, simulated: bool = False,
             note: str | None = None) -> Path:
    """Save ``fig`` to ``<run_dir>/figures/<name>.png`` with a provenance footer (SYNTHETIC data,
    SIMULATED answers), close it, and show the saved file when running in a notebook."""
    footer = " ".join(x for x in (SIMULATED_FOOTER if simulated else None,
                                  SYNTHETIC_FOOTER if synthetic else None, note) if x)
    if footer:
        fig.tight_layout()
        fig.text(0.01, -0.03, footer, ha="left", va="top", fontsize=8, color="dimgray", wrap=True)
    path = Path(run_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    _show(path)  # in a notebook: the saved PNG itself, so the figure is rendered once
    return path


def _show(path: Path) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(filename=str(path)))


def is_reference(method: str) -> bool:
    return method in REFERENCE_METHODS or method.startswith("human-")


def iw_map(positions: pd.DataFrame, *, title: str, ax=None):
    """Scatter of countries on the two IW dimensions; ``positions``: country, trad_secular,
    surv_selfexp, source (e.g. 'this data' / 'published'). Lines join a country's two positions."""
    ax = ax or plt.subplots(figsize=(8, 6.5))[1]
    sns.scatterplot(data=positions, x="surv_selfexp", y="trad_secular", hue="source", style="source", s=70, ax=ax)
    for country, grp in positions.groupby("country"):
        if len(grp) == 2:
            ax.plot(grp["surv_selfexp"], grp["trad_secular"], color="lightgray", lw=1, zorder=0)
        first = grp.iloc[0]
        ax.annotate(country, (first["surv_selfexp"], first["trad_secular"]), fontsize=8,
                    xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set(xlabel="survival (−) ↔ self-expression (+)", ylabel="traditional (−) ↔ secular-rational (+)", title=title)
    return ax


REFERENCE_STYLE = {  # reference rows: distinct grey/black markers, never a method colour
    "regression": ("black", "D"), "regression-all": ("dimgray", "d"), "global": ("gray", "s"),
    "uniform": ("silver", "X"),
}


def _reference_style(method: str, i: int) -> tuple[str, str]:
    if method in REFERENCE_STYLE:
        return REFERENCE_STYLE[method]
    return (str(0.15 + 0.15 * (i % 4)), ("v", "^", "<", ">", "p")[i % 5])  # human-N: grey triangles


def _reference_rank(method: str):
    if method.startswith("human-"):
        return (1, int(method.split("-")[1]) if method.split("-")[1].isdigit() else 0)
    return (0, list(REFERENCE_STYLE).index(method) if method in REFERENCE_STYLE else 99)


def error_by_country(summary: pd.DataFrame, *, metric: str = "jsd", title: str, ax=None):
    """Per-country mean error by method: countries as categories, one point per method (with its
    interval when ``<metric>_lo/_hi`` are present), methods side by side within a country. LLM
    methods are coloured circles; each reference row has its own grey/black marker.
    ``summary``: method, country, <metric> (mean over items)."""
    countries = sorted(summary["country"].unique())
    methods = list(dict.fromkeys(summary["method"]))
    llm = [m for m in methods if not is_reference(m)]
    refs = sorted((m for m in methods if is_reference(m)), key=_reference_rank)
    ax = ax or plt.subplots(figsize=(max(8, 1.3 * len(countries) + 3), 5))[1]
    palette = dict(zip(llm, sns.color_palette("tab20" if len(llm) > 10 else "tab10", len(llm))))
    width = 0.8 / max(len(methods), 1)
    has_ci = f"{metric}_lo" in summary.columns
    for j, m in enumerate(llm + refs):
        d = summary[summary["method"] == m].set_index("country").reindex(countries)
        x = np.arange(len(countries)) - 0.4 + width * (j + 0.5)
        color, marker = (palette[m], "o") if m in palette else _reference_style(m, j)
        if has_ci and m in palette:
            ax.errorbar(x, d[metric], yerr=[d[metric] - d[f"{metric}_lo"], d[f"{metric}_hi"] - d[metric]],
                        fmt="none", ecolor=color, elinewidth=1, alpha=0.6)
        ax.scatter(x, d[metric], color=color, marker=marker, s=40 if m in palette else 34, label=m, zorder=3,
                   edgecolor="white" if m in palette else "black", linewidth=0.5)
    for k in range(1, len(countries)):
        ax.axvline(k - 0.5, color="lightgray", lw=0.8, zorder=0)
    ax.set_xticks(np.arange(len(countries)), countries)
    ax.grid(axis="x", visible=False)
    ylabel = f"mean {metric} over items (lower is better)" + ("\nbars: 95% CI, studentized bootstrap over items" if has_ci else "")
    ax.set(xlabel="country", ylabel=ylabel, title=title, xlim=(-0.5, len(countries) - 0.5))
    ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8, title="method (grey/black: reference)",
              title_fontsize=8)
    return ax


def gap_chart(gaps: pd.DataFrame, *, title: str, axes=None):
    """Left: the gap (underrepresented - aligned) per method with its 95% interval; right: for each
    compared pair, the change in the gap's size |gap a| - |gap b| (negative = a narrows it).
    ``gaps``: the table of :func:`vpersona.evaluate.crosscultural.gap_intervals`."""
    if not {"what", "a", "b", "estimate", "lo", "hi"} <= set(gaps.columns):
        raise ValueError("gap_chart takes the table of crosscultural.gap_intervals (what, a, b, estimate, lo, hi)")
    gap = gaps[gaps["what"] == "gap"]
    narrow = gaps[gaps["what"] == "narrowing"]
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * max(len(gap), len(narrow), 4) + 1.6),
                                 gridspec_kw={"width_ratios": [1, 1]})
    unit = gaps["unit"].iloc[0] if len(gaps) else ""
    metric = gaps["metric"].iloc[0] if len(gaps) else ""
    for ax, t, labels, xlabel in (
            (axes[0], gap, gap["a"], f"gap in mean {metric}: underrepresented - aligned\n(> 0: underrepresented served worse)"),
            (axes[1], narrow, narrow["a"] + " vs " + narrow["b"], "change in the gap's size |gap a| - |gap b|\n(< 0: a narrows it)")):
        y = np.arange(len(t))[::-1]
        excl = (t["lo"] > 0) | (t["hi"] < 0)
        ax.errorbar(t["estimate"], y, xerr=[t["estimate"] - t["lo"], t["hi"] - t["estimate"]], fmt="none",
                    ecolor="gray", elinewidth=1.5, capsize=3)
        ax.scatter(t["estimate"], y, c=np.where(excl, "firebrick", "steelblue"), zorder=3, s=40)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, labels)
        ax.set(xlabel=xlabel, ylim=(-0.7, max(len(t), 1) - 0.3))
    how = "Welch t over the groups' countries" if unit == "countries" else f"{unit} bootstrap"
    axes[0].set_title(f"gap per method (95% CI, {how})", fontsize=10)
    axes[1].set_title("does the gap narrow? (paired 95% CI; red: excludes 0)", fontsize=10)
    axes[0].figure.suptitle(title)
    return axes[0].figure


def _paired_kinds(methods) -> list[str]:
    methods = list(dict.fromkeys(methods))
    return [m for m in methods if not m.endswith("+T") and f"{m}+T" in methods]


def diversity_before_after(cells: pd.DataFrame, *, title: str, ax=None):
    """Paired plot: for each persona kind with a calibrated version, each country's mean diversity
    ratio σ̂/σ before (kind) and after (kind+T) calibration, joined by a line; the mean over
    countries in black. The dashed line at 1 is human diversity. ``cells``: per-cell scores."""
    kinds = _paired_kinds(cells["method"])
    if not kinds:
        raise ValueError("no method has a calibrated '<kind>+T' version in the cell table; nothing to pair")
    per = cells.dropna(subset=["diversity_ratio"]).groupby(["method", "country"])["diversity_ratio"].mean()
    ax = ax or plt.subplots(figsize=(max(6, 2.2 * len(kinds) + 1.5), 4.8))[1]
    for j, k in enumerate(kinds):
        both = pd.concat({"before": per.get(k), "after": per.get(f"{k}+T")}, axis=1).dropna()
        x = np.array([2 * j, 2 * j + 1])
        for country, r in both.iterrows():
            up = abs(r["after"] - 1) < abs(r["before"] - 1)
            ax.plot(x, [r["before"], r["after"]], color="seagreen" if up else "indianred", lw=1, alpha=0.7, marker="o", ms=4)
            ax.annotate(country, (x[1], r["after"]), xytext=(4, 0), textcoords="offset points", fontsize=7,
                        va="center", color="dimgray")
        ax.plot(x, [both["before"].mean(), both["after"].mean()], color="black", lw=2.5, marker="s", ms=7, zorder=4)
    ax.axhline(1.0, color="black", lw=1, ls="--")
    ax.set_xticks(np.arange(2 * len(kinds)), [m for k in kinds for m in (k, f"{k}+T")], rotation=30)
    ax.set_xlim(-0.5, 2 * len(kinds) - 0.2)
    ax.grid(axis="x", visible=False)
    ax.set(xlabel="persona kind: before and after calibration (lines: countries; black: their mean)",
           ylabel="mean diversity ratio σ̂/σ over items\n(1 = as diverse as humans)", title=title)
    from matplotlib.lines import Line2D
    ax.legend(handles=[Line2D([], [], color="seagreen", label="closer to 1 after"),
                       Line2D([], [], color="indianred", label="farther from 1 after")],
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return ax


def culture_map(positions: pd.DataFrame, explained, *, title: str, ax=None):
    """Countries on the first two components of the human target answers
    (:func:`vpersona.evaluate.culture_map.culture_map`): human points labelled in black, each
    method's predicted country labelled in the method's colour and joined to its human point."""
    ax = ax or plt.subplots(figsize=(9, 7))[1]
    methods = [m for m in dict.fromkeys(positions["method"]) if m != "human"]
    palette = dict(zip(methods, sns.color_palette("tab10", len(methods))))
    human = positions[positions["method"] == "human"].set_index("country")
    markers = dict(zip(methods, "osD^vP*X"))
    for m in methods:
        d = positions[positions["method"] == m].set_index("country")
        for country, r in d.iterrows():
            if country in human.index:
                h = human.loc[country]
                ax.plot([h["dim1"], r["dim1"]], [h["dim2"], r["dim2"]], color=palette[m], lw=0.8, alpha=0.5, zorder=1)
            ax.annotate(country, (r["dim1"], r["dim2"]), fontsize=7, color=palette[m], xytext=(3, -8),
                        textcoords="offset points")
        ax.scatter(d["dim1"], d["dim2"], color=palette[m], marker=markers[m], s=45, label=m, zorder=2,
                   edgecolor="white", linewidth=0.5)
    ax.scatter(human["dim1"], human["dim2"], color="black", marker="*", s=140, label="human", zorder=3)
    for country, r in human.iterrows():
        ax.annotate(country, (r["dim1"], r["dim2"]), fontsize=9, fontweight="bold", xytext=(4, 4),
                    textcoords="offset points")
    ax.set(xlabel=f"component 1 ({explained[0]:.0%} of human variance)",
           ylabel=f"component 2 ({explained[1]:.0%})", title=title)
    ax.legend(title="lines join a prediction\nto its country's human point", title_fontsize=8, fontsize=8,
              loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


def example_distributions(long: pd.DataFrame, *, title: str, col_wrap: int = 3, catalog=None, max_label: int = 16):
    """Grid of answer distributions, one panel per (country, item), option labels (from the
    catalog) on each panel's x axis and the legend above the grid; ``long``: country, item,
    option (1..K), p, method (with method 'human' for the target)."""
    from vpersona.data.catalog import load_catalog

    catalog = catalog or load_catalog()
    long = long.assign(cell=long["country"] + " · " + long["item"])
    cells = list(dict.fromkeys(long["cell"]))
    methods = list(dict.fromkeys(long["method"]))
    others = [m for m in methods if m != "human"]
    hue = ["human", *others]
    palette = {"human": "black", **dict(zip(others, sns.color_palette("tab10", len(others))))}
    n_rows = int(np.ceil(len(cells) / col_wrap))
    fig, axes = plt.subplots(n_rows, col_wrap, figsize=(4.4 * col_wrap, 3.3 * n_rows + 0.9), squeeze=False)
    for ax, cell in zip(axes.ravel(), cells):
        d = long[long["cell"] == cell]
        item = catalog[d["item"].iloc[0]]
        K = int(d["option"].max())
        width = 0.8 / len(hue)
        for j, m in enumerate(hue):
            dm = d[d["method"] == m].set_index("option").reindex(range(1, K + 1))
            ax.bar(np.arange(K) - 0.4 + width * (j + 0.5), dm["p"].fillna(0), width, color=palette[m], label=m)
        labels = [lab if len(lab) <= max_label else lab[: max_label - 1] + "…" for _, lab in item.options[:K]]
        ax.set_xticks(np.arange(K), labels, rotation=40 if K > 3 else 0, ha="right" if K > 3 else "center", fontsize=7)
        ax.set_title(textwrap.shorten(f"{cell}: {item.label}", 70, placeholder="…"), fontsize=9, wrap=True)
        ax.set_ylabel("share of answers", fontsize=8)
    for ax in axes.ravel()[len(cells):]:
        ax.set_visible(False)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(hue), bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.suptitle(title, y=1.04)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def example_cells(tables, examples: pd.DataFrame) -> pd.DataFrame:
    """Long table (method, country, item, option, p) of the ``examples`` cells from several
    distribution tables, for :func:`example_distributions`; options past an item's K are left out."""
    from vpersona.core.distributions import prob_columns
    shown = pd.concat(list(tables), ignore_index=True).merge(examples, on=["country", "item"])
    long = shown.melt(id_vars=["method", "country", "item", "K"], value_vars=prob_columns(),
                      var_name="option", value_name="p")
    long["option"] = long["option"].str[1:].astype(int)
    return long[long["option"] <= long["K"]]

