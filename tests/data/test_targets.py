"""Human targets from hand-made Surveys and from the bundled real marginals (vpersona/targets.py)."""
import gzip

import numpy as np
import pandas as pd
import pytest

from vpersona.core.distributions import to_matrix
from vpersona.data.survey import Survey
from vpersona.data.targets import human_distributions, marginal_distributions


def make_survey(rows, items):
    """rows: (country, weight, {item: code or negative missing code})."""
    ids = [f"r{i}" for i in range(len(rows))]
    resp = pd.DataFrame({"country": [r[0] for r in rows], "weight": [r[1] for r in rows]}, index=ids)
    miss = pd.DataFrame(0, index=ids, columns=items)
    for item in items:
        codes = pd.Series([r[2].get(item, -5) for r in rows], index=ids, dtype=float)
        resp[item] = codes.where(codes > 0)
        miss[item] = codes.where(codes < 0, 0).astype(int)
    resp.index.name = miss.index.name = "respondent"
    return Survey(resp, miss, source="hand-made test survey", synthetic=True)


def test_weighted_shares_exclude_missing_and_follow_catalog_order():
    # Q1 options 1..4 (Very important .. Not at all important); Q57 binary (1 most can be trusted, 2 careful)
    s = make_survey([("AAA", 1.0, {"Q1": 1, "Q57": 1}), ("AAA", 3.0, {"Q1": 2, "Q57": 2}),
                     ("AAA", 2.0, {"Q1": -1, "Q57": 2}), ("AAA", 4.0, {"Q1": 4, "Q57": -2})], ["Q1", "Q57"])
    table = human_distributions(s, ["Q1", "Q57"])
    assert list(table.columns) == ["country", "item", "K", *[f"p{k}" for k in range(1, 11)], "n", "n_weighted"]
    t = table.set_index("item")
    q1 = t.loc["Q1"]
    assert q1["K"] == 4 and q1["n"] == 3 and q1["n_weighted"] == 8.0
    assert np.allclose(q1[["p1", "p2", "p3", "p4"]].to_numpy(float), [1 / 8, 3 / 8, 0, 4 / 8])
    assert q1[[f"p{k}" for k in range(5, 11)]].sum() == 0
    q57 = t.loc["Q57"]
    assert q57["K"] == 2 and np.allclose(q57[["p1", "p2"]].to_numpy(float), [1 / 6, 5 / 6])


def test_items_not_asked_are_absent_not_zero():
    s = make_survey([("AAA", 1.0, {"Q1": 1, "Q57": -4}), ("AAA", 1.0, {"Q1": 2, "Q57": -4}),
                     ("BBB", 1.0, {"Q1": 3, "Q57": 1})], ["Q1", "Q57"])
    assert not s.asked("AAA", "Q57")
    t = human_distributions(s, ["Q1", "Q57"])
    cells = set(zip(t["country"], t["item"]))
    assert cells == {("AAA", "Q1"), ("BBB", "Q1"), ("BBB", "Q57")}


def test_codes_that_are_not_options_are_dropped_with_a_warning():
    s = make_survey([("AAA", 1.0, {"Q254": 1}), ("AAA", 1.0, {"Q254": 5}), ("AAA", 1.0, {"Q254": 2})], ["Q254"])
    with pytest.warns(UserWarning, match="not options"):
        t = human_distributions(s, ["Q254"])
    assert t["n"].iloc[0] == 2 and np.allclose(to_matrix(t)[0][0, :4], [0.5, 0.5, 0, 0])


def test_unknown_items_are_errors_that_name_them():
    s = make_survey([("AAA", 1.0, {"Q1": 1})], ["Q1"])
    with pytest.raises(ValueError, match="Q57"):
        human_distributions(s, ["Q1", "Q57"])
    with pytest.raises(KeyError, match="QXX"):
        human_distributions(s, ["QXX"])


def test_marginals_match_the_bundled_file_with_code_5_of_q254_dropped():
    t = marginal_distributions(["AND", "JPN"], ["Q254", "Q1", "Q152"])
    raw = pd.read_csv("vpersona/resources/wvs7_marginals.csv.gz")
    andorra = raw[(raw["country"] == "AND") & (raw["item"] == "Q254") & (raw["code"] <= 4)]
    row = t[(t["country"] == "AND") & (t["item"] == "Q254")].iloc[0]
    expected = andorra.sort_values("code")["share_w"].to_numpy()
    assert np.allclose(row[["p1", "p2", "p3", "p4"]].to_numpy(float), expected / expected.sum())
    assert row["n"] == andorra["n_code"].sum() and np.isnan(row["n_weighted"])
    P, K = to_matrix(t)
    assert np.allclose(P.sum(axis=1), 1.0) and set(K) == {4}


def test_marginals_default_to_every_country_and_item_and_skip_unasked_cells():
    t = marginal_distributions()
    assert t["country"].nunique() == 56 and len(t) > 3500
    assert not t.duplicated(["country", "item"]).any()
    with gzip.open("vpersona/resources/wvs7_marginals.csv.gz", "rt") as fh:
        raw = pd.read_csv(fh)
    assert len(t) <= raw.groupby(["country", "item"]).ngroups


def test_marginal_errors_list_what_exists():
    with pytest.raises(ValueError, match="countries with marginals: AND"):
        marginal_distributions(["USA"])
    with pytest.raises(ValueError, match="not in the bundled marginals"):
        marginal_distributions(["AND"], ["Q262"])
