"""Aggregation of persona distributions (vpersona/aggregate.py)."""
import numpy as np
import pandas as pd
import pytest

from vpersona.calibrate.aggregate import aggregate, persona_distributions

NAN = float("nan")


def answers(rows):
    """rows: (persona_id, country, kind, item, multiplicity, replicate, [p...])."""
    frame = pd.DataFrame([r[:6] for r in rows],
                         columns=["persona_id", "country", "kind", "item", "multiplicity", "replicate"])
    frame["K"] = [len(r[6]) for r in rows]
    for k in range(10):
        frame[f"p{k + 1}"] = [r[6][k] if k < len(r[6]) else 0.0 for r in rows]
    frame["covered_mass"] = 0.9
    frame["flags"] = ""
    return frame


def test_multiplicity_weighted_mean_with_replicates_averaged_first():
    a = answers([
        ("p1", "AAA", "value", "Q57", 3, 0, [1.0, 0.0]),
        ("p1", "AAA", "value", "Q57", 3, 1, [0.5, 0.5]),   # p1 averages to (0.75, 0.25)
        ("p2", "AAA", "value", "Q57", 1, 0, [0.0, 1.0]),
    ])
    out = aggregate(a)
    assert list(out.columns[:4]) == ["country", "item", "kind", "K"]
    row = out.iloc[0]
    assert row["p1"] == pytest.approx((3 * 0.75 + 0) / 4) and row["p2"] == pytest.approx((3 * 0.25 + 1) / 4)
    assert (row["n_personas"], row["n_valid_personas"], row["n_distinct_personas"]) == (4, 4, 2)
    assert row["covered_mass"] == pytest.approx(0.9)


def test_refusals_are_excluded_and_counted():
    a = answers([
        ("p1", "AAA", "value", "Q1", 2, 0, [NAN, NAN, NAN, NAN]),    # refused
        ("p2", "AAA", "value", "Q1", 1, 0, [0.0, 0.0, 1.0, 0.0]),
        ("p3", "AAA", "value", "Q1", 1, 0, [0.0, 0.0, 0.0, 0.0]),    # no mass: invalid too
        ("p4", "AAA", "value", "Q1", 1, 0, [NAN, NAN, NAN, NAN]),
        ("p4", "AAA", "value", "Q1", 1, 1, [1.0, 0.0, 0.0, 0.0]),    # one valid replicate is enough
    ])
    row = aggregate(a).iloc[0]
    assert np.allclose(row[["p1", "p2", "p3", "p4"]].to_numpy(float), [0.5, 0, 0.5, 0])
    assert (row["n_personas"], row["n_valid_personas"]) == (5, 2)
    per = persona_distributions(a).set_index("persona_id")
    assert per.loc["p4", "n_replicates"] == 2 and per.loc["p4", "n_valid_replicates"] == 1


def test_cells_are_kept_apart_and_an_all_refused_cell_stays_visible():
    a = answers([
        ("p1", "AAA", "value", "Q57", 1, 0, [1.0, 0.0]),
        ("p1", "AAA", "none", "Q57", 1, 0, [0.0, 1.0]),
        ("p2", "BBB", "value", "Q57", 1, 0, [NAN, NAN]),
    ])
    out = aggregate(a).set_index(["country", "kind"])
    assert out.loc[("AAA", "value"), "p1"] == 1.0 and out.loc[("AAA", "none"), "p2"] == 1.0
    assert np.isnan(out.loc[("BBB", "value"), "p1"]) and out.loc[("BBB", "value"), "n_valid_personas"] == 0


def test_bad_answer_tables_are_refused():
    a = answers([("p1", "AAA", "value", "Q57", 1, 0, [1.0, 0.0])])
    with pytest.raises(ValueError, match="lacks columns"):
        aggregate(a.drop(columns="multiplicity"))
    with pytest.raises(ValueError, match="multiplicity <= 0"):
        aggregate(a.assign(multiplicity=0))
