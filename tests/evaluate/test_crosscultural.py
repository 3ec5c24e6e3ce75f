"""Cross-cultural summaries (vpersona/crosscultural.py) with known answers."""
import numpy as np
import pandas as pd
import pytest

from vpersona.evaluate.crosscultural import (country_groups, divergence_ratio, gap_change, group_gap, iw_distance,
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
