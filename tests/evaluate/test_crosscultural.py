"""Cross-cultural summaries (vpersona/crosscultural.py) with known answers."""
import numpy as np
import pandas as pd
import pytest

from vpersona.evaluate.crosscultural import (gap_intervals, country_groups, divergence_ratio, gap_change, group_gap, iw_distance,
                                    mean_correlation, summarise_divergence)
from vpersona.core.distributions import from_matrix


def dist_table(cells, method="m"):
    """cells: (country, item, dist)."""
    P = np.zeros((len(cells), 10))
    for i, (_, _, d) in enumerate(cells):
        P[i, : len(d)] = d
    keys = pd.DataFrame({"method": method, "country": [c for c, _, _ in cells], "item": [i for _, i, _ in cells]})
    return from_matrix(keys, P, [len(d) for _, _, d in cells])


def test_zone_rule_and_iw_distance_rule():
    g = country_groups(["AUS", "DEU", "NGA", "JPN", "NZL"])
    assert g.to_dict() == {"AUS": "aligned", "DEU": "aligned", "JPN": "underrepresented", "NGA": "underrepresented",
                           "NZL": "aligned"}
    custom = country_groups(["AUS", "JPN"], aligned_zones=("Confucian",))
    assert custom["JPN"] == "aligned" and custom["AUS"] == "underrepresented"
    d = iw_distance(["USA", "NIR", "ZWE"])
    assert d["USA"] == 0 and d["NIR"] < 0.5 < 3 < d["ZWE"]
    by_map = country_groups(["NIR", "ZWE", "URY"], rule="iw_distance", threshold=1.0)
    assert by_map.to_dict() == {"NIR": "aligned", "URY": "aligned", "ZWE": "underrepresented"}
    with pytest.raises(ValueError, match="rule"):
        country_groups(["AUS"], rule="continent")
    with pytest.raises(ValueError, match="XXX"):
        country_groups(["XXX"])


def test_gap_weights_countries_equally_and_its_change():
    cells = pd.DataFrame({
        "method": ["none"] * 5 + ["value"] * 5,
        "country": ["AUS", "DEU", "NGA", "NGA", "JPN"] * 2,
        "item": ["Q1", "Q1", "Q1", "Q6", "Q1"] * 2,
        "jsd": [0.1, 0.1, 0.2, 0.4, 0.3, 0.1, 0.1, 0.15, 0.15, 0.15],
    })
    gaps = group_gap(cells, country_groups(cells["country"])).set_index("method")
    assert gaps.loc["none", "aligned"] == pytest.approx(0.1)
    assert gaps.loc["none", "underrepresented"] == pytest.approx(0.3)  # NGA mean 0.3, JPN 0.3
    assert gaps.loc["none", "gap"] == pytest.approx(0.2) and gaps.loc["value", "gap"] == pytest.approx(0.05)
    assert gaps.loc["none", "n_aligned"] == 2 and gaps.loc["none", "n_underrepresented"] == 2
    change = gap_change(gaps.reset_index(), [("value", "none")]).iloc[0]
    assert change["change"] == pytest.approx(-0.15)
    with pytest.raises(ValueError, match="no group"):
        group_gap(cells, country_groups(["AUS"]))


def test_divergence_ratio_known_cases():
    human = dist_table([("A", "Q57", [1, 0]), ("B", "Q57", [0, 1]), ("A", "Q1", [0.25] * 4),
                        ("B", "Q1", [0.25] * 4), ("C", "Q57", [0.5, 0.5])], method="human")
    same = human.assign(method="same")
    collapsed = dist_table([("A", "Q57", [0.5, 0.5]), ("B", "Q57", [0.5, 0.5]), ("C", "Q57", [0.5, 0.5])], "flat")
    per_item = divergence_ratio(pd.concat([same, collapsed]), human)
    s = summarise_divergence(per_item).set_index("method")
    assert s.loc["same", "divergence_ratio"] == pytest.approx(1.0)
    assert s.loc["flat", "divergence_ratio"] == 0.0
    flat_q57 = per_item[(per_item["method"] == "flat") & (per_item["item"] == "Q57")].iloc[0]
    assert flat_q57["n_countries"] == 3
    # human pairs: A-B disjoint (1), A-C and B-C = JSD((1,0),(.5,.5)) = 0.5579
    assert flat_q57["human_divergence"] == pytest.approx((1 + 2 * 0.5579230452841438) / 3)
    assert per_item[(per_item["method"] == "same") & (per_item["item"] == "Q1")]["ratio"].isna().all()  # 0/0


def test_mean_correlation_across_countries():
    human = dist_table([(c, "Q1", d) for c, d in
                        [("A", [1, 0, 0, 0]), ("B", [0, 1, 0, 0]), ("C", [0, 0, 1, 0]), ("D", [0, 0, 0.5, 0.5])]])
    shifted = dist_table([(c, "Q1", d) for c, d in
                          [("A", [0.5, 0.5, 0, 0]), ("B", [0, 0.5, 0.5, 0]), ("C", [0, 0, 0.5, 0.5]),
                           ("D", [0, 0, 0, 1])]], "shifted")  # every mean + 0.5
    reversed_ = dist_table([(c, "Q1", d[::-1]) for c, d in
                            [("A", [1, 0, 0, 0]), ("B", [0, 1, 0, 0]), ("C", [0, 0, 1, 0]), ("D", [0, 0, 0.5, 0.5])]],
                           "reversed")
    nominal = dist_table([(c, "Q152", [0.25] * 4) for c in "ABC"], "shifted")
    r = mean_correlation(pd.concat([shifted, reversed_, nominal]), human).set_index("method")
    assert r.loc["shifted", "r"] == pytest.approx(1.0) and r.loc["reversed", "r"] == pytest.approx(-1.0)
    assert (r["item"] == "Q1").all()  # nominal items have no mean answer


def _gap_cells(shift_under: float = 0.0, spread: float = 0.0):
    """Methods b and a on 3 aligned (AUS, NZL, DEU) + 3 underrepresented (NGA, PAK, JPN) countries x 5 items.
    b: 0.3 aligned, 0.5 underrepresented (gap 0.2), plus an item effect of sd ``spread``;
    a: b minus ``shift_under`` on the underrepresented countries only."""
    rng = np.random.default_rng(0)
    item = rng.normal(0, spread, 5)
    rows = []
    for c, base in [("AUS", 0.3), ("NZL", 0.3), ("DEU", 0.3), ("NGA", 0.5), ("PAK", 0.5), ("JPN", 0.5)]:
        for i in range(5):
            b = base + item[i]
            a = b - (shift_under if base == 0.5 else 0.0)
            rows += [{"method": "b", "country": c, "item": f"Q{i}", "jsd": b},
                     {"method": "a", "country": c, "item": f"Q{i}", "jsd": a}]
    return pd.DataFrame(rows)


def test_gap_intervals_known_gap_and_change():
    cells = _gap_cells(shift_under=0.15, spread=0.05)
    cells.loc[cells["country"] == "NGA", "jsd"] += 0.3  # an odd country in both methods: the gap itself varies
    groups = country_groups(cells["country"])
    for unit in ("countries", "items", "both"):
        t = gap_intervals(cells, groups, ["a", "b"], [("a", "b")], unit=unit, n_boot=300).set_index(["what", "a"])
        assert t.loc[("gap", "b"), "estimate"] == pytest.approx(0.3)
        assert t.loc[("gap", "b"), "hi"] - t.loc[("gap", "b"), "lo"] > (0.05 if unit != "items" else -1)
        assert t.loc[("change", "a"), "estimate"] == pytest.approx(-0.15)
        assert t.loc[("narrowing", "a"), "estimate"] == pytest.approx(-0.15)
        # a is b shifted on whole countries: every resample moves the gap by exactly -0.15 (paired)
        assert t.loc[("change", "a"), "lo"] == pytest.approx(-0.15) and t.loc[("change", "a"), "hi"] == pytest.approx(-0.15)
    gaps = group_gap(cells, groups).set_index("method")["gap"]
    t = gap_intervals(cells, groups, ["a", "b"], n_boot=0).set_index("a")
    assert t.loc["a", "estimate"] == pytest.approx(gaps["a"]) and t.loc["b", "estimate"] == pytest.approx(gaps["b"])


def test_gap_units_resample_what_they_claim():
    # an item x group interaction, identical countries within a group: only the item bootstrap moves
    cells = _gap_cells(spread=0.2)
    under = cells["country"].isin(["NGA", "PAK", "JPN"])
    cells.loc[under, "jsd"] += cells.loc[under, "item"].map({f"Q{i}": 0.1 * i for i in range(5)})
    groups = country_groups(cells["country"])
    by_c = gap_intervals(cells, groups, ["b"], unit="countries", n_boot=500).iloc[0]
    by_i = gap_intervals(cells, groups, ["b"], unit="items", n_boot=500).iloc[0]
    assert by_c["hi"] - by_c["lo"] == pytest.approx(0.0, abs=1e-12)
    assert by_i["hi"] - by_i["lo"] > 0.1
    # one odd underrepresented country: now the country bootstrap moves
    cells.loc[cells["country"] == "NGA", "jsd"] += 0.3
    by_c = gap_intervals(cells, groups, ["b"], unit="countries", n_boot=500).iloc[0]
    assert by_c["hi"] - by_c["lo"] > 0.1
    with pytest.raises(ValueError, match="a gap's bootstrap unit must be one of"):
        gap_intervals(cells, groups, ["b"], unit="cells")
    with pytest.raises(ValueError, match="both groups"):
        gap_intervals(cells[cells["country"].isin(["AUS", "NZL"])], groups, ["b"])


def test_gap_resamples_countries_within_groups():
    from vpersona.evaluate.crosscultural import _boot_gaps

    rng = np.random.default_rng(0)
    V = rng.uniform(0, 1, (1, 4, 6))
    under = np.array([False, True, True, True, True, True])  # one aligned country: it is in every resample
    gaps = _boot_gaps(V, np.ones_like(V), under, "countries", 500, 0)
    assert np.isfinite(gaps).all()
