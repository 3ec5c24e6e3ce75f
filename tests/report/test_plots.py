"""Figures render on small constructed tables and carry what makes them stand alone."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from vpersona.report import plots


def per_country():
    rows = [{"method": m, "country": c, "jsd": v + 0.01 * i, "jsd_lo": v - 0.05, "jsd_hi": v + 0.05}
            for m, v in [("value", 0.5), ("value+T", 0.45), ("regression", 0.2), ("global", 0.25),
                         ("uniform", 0.3), ("human-4", 0.4), ("human-25", 0.15)] for i, c in enumerate(["AUS", "NGA", "JPN"])]
    return pd.DataFrame(rows)


def test_error_by_country_points_not_lines_and_distinct_reference_markers(tmp_path):
    ax = plots.error_by_country(per_country(), title="t")
    assert not [l for l in ax.lines if len(l.get_xdata()) > 2]  # no method line across countries
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AUS", "JPN", "NGA"]
    legend = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    refs = ["regression", "global", "uniform", "human-4", "human-25"]
    styles = {(tuple(np.round(legend[m].get_facecolor()[0], 3)), legend[m].get_paths()[0].vertices.shape) for m in refs}
    assert len(styles) == len(refs)  # every reference row looks different
    assert list(legend)[-2:] == ["human-4", "human-25"]  # human-N by N
    assert plots.save_fig(ax.figure, tmp_path, "e", synthetic=True).stat().st_size > 0


def test_gap_chart_has_intervals_and_diversity_is_paired(tmp_path):
    gaps = pd.DataFrame({"what": ["gap", "gap", "narrowing"], "a": ["value", "country", "value"],
                         "b": ["", "", "country"], "metric": "jsd", "unit": "countries",
                         "estimate": [0.05, 0.1, -0.05], "lo": [0.01, 0.05, -0.08], "hi": [0.09, 0.15, -0.01]})
    fig = plots.gap_chart(gaps, title="t")
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["value vs country"]
    assert len(fig.axes[0].collections) >= 2  # error bars + points
    cells = pd.DataFrame({"method": ["value", "value+T"] * 4, "country": np.repeat(["A", "B"], 4),
                          "item": ["q1", "q1", "q2", "q2"] * 2, "diversity_ratio": [0.7, 0.9, 0.8, 1.0, 1.2, 1.1, 1.0, 1.0]})
    ax = plots.diversity_before_after(cells, title="t")
    joined = [l for l in ax.lines if len(l.get_xdata()) == 2 and l.get_linestyle() != "--"]
    assert len(joined) == 2 + 1  # one line per country + the mean
    with pytest.raises(ValueError, match="no method has a calibrated"):
        plots.diversity_before_after(cells[cells["method"] == "value"], title="t")


def test_culture_map_labels_every_predicted_country_and_joins_it():
    pos = pd.DataFrame({"country": ["A", "B", "C"] * 2, "method": ["human"] * 3 + ["value"] * 3,
                        "dim1": [0, 1, 2, 0.1, 0.9, 1.5], "dim2": [0, 1, 0, 0.2, 0.5, 0.1]})
    ax = plots.culture_map(pos, [0.6, 0.3], title="t")
    labels = [t.get_text() for t in ax.texts]
    assert sorted(labels) == ["A", "A", "B", "B", "C", "C"]
    assert len([l for l in ax.lines if len(l.get_xdata()) == 2]) == 3


def test_example_distributions_option_labels_and_legend_outside():
    long = pd.DataFrame({"method": ["human", "value"] * 4, "country": "AUS", "item": "Q6",
                         "option": np.repeat([1, 2, 3, 4], 2), "p": [0.1, 0.2, 0.2, 0.3, 0.3, 0.3, 0.4, 0.2]})
    fig = plots.example_distributions(long, title="t", col_wrap=2)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "Very important"
    assert ax.get_legend() is None and fig.legends  # figure legend, not on a panel
