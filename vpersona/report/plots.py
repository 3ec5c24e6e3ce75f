"""Figures that stand alone: titled, labelled, saved as PNG named after their notebook, with a
SYNTHETIC footer when the respondent data is the bundled synthetic sample."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

SYNTHETIC_FOOTER = ("SYNTHETIC respondent data (vpersona's bundled sample): value profiles and their link to "
                    "answers are simulated; human targets are real WVS-7 marginals.")
REFERENCE_METHODS = ("uniform", "global", "regression")


def setup() -> None:
    """Plotting defaults shared by the notebooks."""
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 110, "savefig.bbox": "tight"})


def save_fig(fig, run_dir: str | Path, name: str, *, synthetic: bool, note: str | None = None) -> Path:
    """Save ``fig`` to ``<run_dir>/figures/<name>.png`` with a provenance footer, close it, and show
    the saved file when running in a notebook."""
    footer = " ".join(x for x in (SYNTHETIC_FOOTER if synthetic else None, note) if x)
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


def error_by_country(summary: pd.DataFrame, *, metric: str = "jsd", title: str, ax=None):
    """Per-country mean error by method; reference methods drawn dashed/grey so they read as yardsticks.
    ``summary``: method, country, <metric> (mean over items)."""
    ax = ax or plt.subplots(figsize=(11, 5))[1]
    order = sorted(summary["country"].unique())
    methods = list(dict.fromkeys(summary["method"]))
    llm = [m for m in methods if not is_reference(m)]
    palette = dict(zip(llm, sns.color_palette("tab20" if len(llm) > 10 else "tab10", len(llm))))
    palette["regression"] = "black"
    for m in methods:
        d = summary[summary["method"] == m].set_index("country").reindex(order)
        ref = is_reference(m)
        ax.plot(order, d[metric], marker="o" if not ref else "", ls="--" if ref else "-",
                lw=1 if ref else 2, color="gray" if ref and m != "regression" else palette[m],
                alpha=0.8 if ref else 1.0, label=m)
    ax.set(xlabel="country", ylabel=f"mean {metric} over items (lower is better)", title=title)
    ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
    ax.tick_params(axis="x", rotation=45)
    return ax


def gap_chart(groups: pd.DataFrame, *, metric: str = "jsd", title: str, ax=None):
    """Mean error of aligned vs underrepresented countries per method; ``groups``: method, group, <metric>."""
    ax = ax or plt.subplots(figsize=(11, 4.5))[1]
    order = [m for m in dict.fromkeys(groups["method"]) if not is_reference(m)]
    order += [m for m in dict.fromkeys(groups["method"]) if is_reference(m)]
    sns.barplot(data=groups, x="method", y=metric, hue="group", order=order, ax=ax)
    ax.set(xlabel="method (reference rows on the right)", ylabel=f"mean {metric} (lower is better)", title=title)
    ax.legend(title="countries", bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.tick_params(axis="x", rotation=30)
    return ax


def diversity_before_after(cells: pd.DataFrame, *, title: str, ax=None):
    """Distribution over held-out cells of the diversity ratio σ̂/σ (1 = human diversity) per method."""
    ax = ax or plt.subplots(figsize=(9, 4.5))[1]
    sns.boxplot(data=cells, x="method", y="diversity_ratio", ax=ax, color="lightsteelblue", fliersize=2)
    ax.axhline(1.0, color="firebrick", lw=1, ls="--")
    ax.set(xlabel="method", ylabel="diversity ratio σ̂/σ (1 = as diverse as humans)", title=title)
    ax.tick_params(axis="x", rotation=30)
    return ax


def example_distributions(long: pd.DataFrame, *, title: str, col_wrap: int = 3):
    """Grid of answer distributions, one panel per (country, item); ``long``: country, item, option,
    p, method (with method 'human' for the target)."""
    long = long.assign(cell=long["country"] + " · " + long["item"])
    methods = list(dict.fromkeys(long["method"]))
    others = [m for m in methods if m != "human"]
    palette = {"human": "black", **dict(zip(others, sns.color_palette("tab10", len(others))))}
    g = sns.catplot(data=long, kind="bar", x="option", y="p", hue="method", col="cell", col_wrap=col_wrap,
                    hue_order=["human", *others], palette=palette,
                    height=2.6, aspect=1.4, sharex=False, legend_out=True)
    g.set_titles("{col_name}")
    g.set_axis_labels("answer option (scale order)", "share")
    g.figure.suptitle(title, y=1.03)
    return g.figure


def example_cells(tables, examples: pd.DataFrame) -> pd.DataFrame:
    """Long table (method, country, item, option, p) of the ``examples`` cells from several
    distribution tables, for :func:`example_distributions`; options past an item's K are left out."""
    from vpersona.core.distributions import prob_columns
    shown = pd.concat(list(tables), ignore_index=True).merge(examples, on=["country", "item"])
    long = shown.melt(id_vars=["method", "country", "item", "K"], value_vars=prob_columns(),
                      var_name="option", value_name="p")
    long["option"] = long["option"].str[1:].astype(int)
    return long[long["option"] <= long["K"]]


def culture_map(positions: pd.DataFrame, explained, *, title: str, ax=None):
    """Countries on the first two components of the human target answers, with each method's
    countries projected into the same plane; ``positions``: method, country, dim1, dim2."""
    ax = ax or plt.subplots(figsize=(8.5, 6.5))[1]
    sns.scatterplot(data=positions, x="dim1", y="dim2", hue="method", style="method", s=70, ax=ax)
    for _, r in positions[positions["method"] == "human"].iterrows():
        ax.annotate(r.country, (r.dim1, r.dim2), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel=f"component 1 ({explained[0]:.0%} of human variance)",
           ylabel=f"component 2 ({explained[1]:.0%})", title=title)
    return ax
