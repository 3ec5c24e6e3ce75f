"""The summary's claim lines on constructed cell tables where the answer is known."""
import json

import numpy as np
import pandas as pd
import pytest

from vpersona.evaluate.compare import holm
from vpersona.evaluate.crosscultural import country_groups
from vpersona.report.summary import build_summary, claims, default_order, default_pairs

COUNTRIES = ["AUS", "NZL", "DEU", "GBR", "SWE", "NGA", "PAK", "JPN", "MEX", "BRA"]  # 5 aligned, 5 underrepresented
DEMO = ["AUS", "DEU", "JPN", "MEX", "NGA", "PAK"]  # the demo's 2 aligned, 4 underrepresented


def make_cells(offsets: dict, *, noise=0.02, gap=None, seed=0, n_items=10, diversity=None, countries=COUNTRIES):
    """Cells with jsd = base(country, item) + offsets[method] + noise; ``gap``: method -> extra error
    of the underrepresented countries; diversity_ratio = diversity[method] (default 1) + noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.5, (len(countries), n_items))
    under = (country_groups(countries).reindex(countries) == "underrepresented").to_numpy()
    rows = []
    for method, off in offsets.items():
        V = base + off + rng.normal(0, noise, base.shape)
        V[under] += (gap or {}).get(method, 0.0)
        for c, country in enumerate(countries):
            for i in range(n_items):
                rows.append({"method": method, "country": country, "item": f"Q{i}", "K": 4, "jsd": V[c, i],
                             "diversity_ratio": (diversity or {}).get(method, 1.0) + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def by_claim(found):
    return {c["claim"].split(" (")[0]: c for c in found}


def test_clear_answers_are_yes_and_no():
    cells = make_cells({"value": 0.0, "country": 0.1, "demographic": -0.1, "value+T": -0.05, "regression": -0.2},
                       gap={"country": 0.2, "value+T": 0.0})
    found = by_claim(claims(cells, country_groups(COUNTRIES), n_boot=400))
    assert found["value < country"]["verdict"] == "yes" and found["value < country"]["wins"] == 10
    assert found["value < demographic"]["verdict"] == "no"
    assert found["value+T < value"]["verdict"] == "yes"
    assert found["the gap narrows"]["verdict"] == "yes" and found["the gap narrows"]["mean"] < -0.15
    assert found["value < regression"]["verdict"] == "no" and "value+T < regression" in found
    assert found["value < country"]["line"].startswith("value < country: yes (Δ JSD -0.2")
    assert "bootstrap-t over items; value wins in 10/10 countries; p 0.0" in found["value < country"]["line"]
    kinds = {k: c["kind"] for k, c in found.items()}
    assert {k for k, v in kinds.items() if v == "primary"} == {"value < country", "value+T < value", "the gap narrows"}
    assert all("p_holm" in found[k] for k in ("value < country", "value+T < value", "the gap narrows"))
    assert "p_holm" not in found["value < demographic"]


def test_no_difference_is_not_shown_and_absent_methods_are_no_claim():
    cells = make_cells({"value": 0.0, "country": 0.0}, noise=0.05)
    found = by_claim(claims(cells, country_groups(COUNTRIES), n_boot=400))
    assert found["value < country"]["verdict"] == "not shown"
    assert set(found) == {"value < country", "the gap narrows"}
    assert found["the gap narrows"]["verdict"] == "not shown"


def test_calibration_diversity_claim_uses_distance_from_one():
    claim = "value+T diversity closer to 1 than value"
    cells = make_cells({"value": 0.0, "value+T": 0.0}, diversity={"value": 0.7, "value+T": 0.95})
    assert by_claim(claims(cells, None, n_boot=400))[claim]["verdict"] == "yes"  # raised towards 1
    cells = make_cells({"value": 0.0, "value+T": 0.0}, diversity={"value": 1.05, "value+T": 1.3})
    assert by_claim(claims(cells, None, n_boot=400))[claim]["verdict"] == "no"  # raised past 1: overshoot


def test_build_summary_lines_and_json():
    cells = make_cells({"value": 0.0, "country": 0.1, "value+T": -0.05, "regression": -0.2, "human-25": -0.25,
                        "human-4": -0.1, "uniform": 0.05})
    lines, summary = build_summary(cells, country_groups(COUNTRIES), run="t", synthetic=True,
                                   human_targets="marginals", n_boot=300)
    assert "SYNTHETIC" in lines[0] and "bootstrap-t over items (10 items)" in lines[1]
    assert any(line.startswith("SYNTHETIC respondents: the claims below") for line in lines)
    head = next(i for i, line in enumerate(lines) if "Primary claims, Holm-corrected over the 3 with a test" in line)
    assert lines[head + 1].startswith("  value < country: yes") and lines[head + 3].startswith("  the gap narrows")
    assert lines[head + 4].startswith("Exploratory (") and "no correction; not claims" in lines[head + 4]
    assert lines[-1].startswith("  value+T < regression: no")
    assert summary["methods"]["value"]["n_items"] == 10 and summary["methods"]["value"]["n_cells"] == 100
    assert summary["unit"] == "items" and summary["claims"][0]["claim"] == "value < country"
    assert json.loads(json.dumps(summary))["paired"][0]["a"] == "value"
    lines_real, summary_real = build_summary(cells, None, run="t", synthetic=False, n_boot=0)
    assert not any("SYNTHETIC" in line for line in lines_real) and summary_real["gap"] == []


def test_default_order_and_pairs():
    methods = ["value", "human-400", "human-4", "country+T", "uniform", "regression", "value+T", "country", "global"]
    assert default_order(methods) == ["country", "country+T", "value", "value+T", "regression", "global",
                                      "uniform", "human-4", "human-400"]
    pairs = default_pairs(default_order(methods))
    assert ("value", "country") in pairs and ("value+T", "country+T") in pairs and ("value+T", "value") in pairs
    assert ("value", "regression") in pairs and ("value", "country+T") not in pairs


def test_gap_narrows_whatever_its_sign():
    # country's underrepresented countries do *better* (gap -0.2); value+T has no gap: it narrowed
    cells = make_cells({"country": 0.0, "value+T": 0.0}, gap={"country": -0.2})
    found = by_claim(claims(cells, country_groups(COUNTRIES), n_boot=400))
    assert found["the gap narrows"]["verdict"] == "yes"


def _one_item_diff_cells(diffs, countries=DEMO):
    """value and country on len(diffs) items, the same in every country, value - country = diffs[item]."""
    rows = []
    for i, d in enumerate(diffs):
        for c in countries:
            rows += [{"method": "country", "country": c, "item": f"Q{i}", "K": 4, "jsd": 0.4, "diversity_ratio": 1.0},
                     {"method": "value", "country": c, "item": f"Q{i}", "K": 4, "jsd": 0.4 + d, "diversity_ratio": 1.0}]
    return pd.DataFrame(rows)


def test_holm_adjusts_like_the_textbook():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm([0.2, np.nan])[1]) and holm([0.2, np.nan])[0] == pytest.approx(0.2)


def test_a_primary_claim_whose_own_interval_excludes_zero_is_not_shown_after_holm():
    # value - country per item (t-test p 0.034): its own 95% interval excludes 0 ...
    d = np.array([-0.1, 0.02, -0.05, 0.0, -0.08, 0.01, -0.03, -0.04]) - 0.006
    cells = _one_item_diff_cells(d)
    alone = by_claim(claims(cells, None))["value < country"]
    assert alone["hi"] < 0 and 0.025 < alone["p"] < 0.05 and alone["verdict"] == "yes"
    # ... but beside a second primary claim just as strong (value+T < value, the same differences),
    # Holm doubles the smaller p and stops there: neither is shown, though both own intervals exclude 0
    value = cells[cells["method"] == "value"]
    calib = value.assign(method="value+T", jsd=value["jsd"].to_numpy() + np.repeat(d, len(DEMO)))
    found = by_claim(claims(pd.concat([cells, calib]), None))
    for claim in ("value < country", "value+T < value"):
        c = found[claim]
        assert c["hi"] < 0 and c["p"] == pytest.approx(alone["p"]) and c["p_holm"] == pytest.approx(2 * alone["p"])
        assert c["verdict"] == "not shown" and f"Holm p {2 * alone['p']:.3f}" in c["line"]


def test_demo_gap_two_against_four_countries_is_welch_with_the_permutation_caveat():
    cells = make_cells({"value": 0.0, "country": 0.1, "value+T": -0.05}, gap={"country": 0.3}, countries=DEMO)
    gap = by_claim(claims(cells, country_groups(DEMO)))["the gap narrows"]
    assert gap["verdict"] == "yes" and "p_holm" in gap and gap["hi"] < 0
    assert "Welch t over countries, 2 aligned / 4 underrepresented" in gap["line"]
    assert ("only 15 relabellings (smallest two-sided p 2/15), so this verdict rests on the t approximation"
            in gap["line"])
    assert "relabellings" not in by_claim(claims(make_cells({"value": 0.0, "value+T": -0.05, "country": 0.1},
                                                            gap={"country": 0.3}), country_groups(COUNTRIES)))[
        "the gap narrows"]["line"]  # 5 / 5: 252 relabellings


def test_one_country_in_a_group_gets_no_gap_interval_and_no_verdict():
    countries = ["AUS", "JPN", "MEX", "NGA", "PAK"]  # 1 aligned
    cells = make_cells({"value": 0.0, "country": 0.1, "value+T": -0.05}, gap={"country": 0.3}, countries=countries)
    groups = country_groups(countries)
    gap = by_claim(claims(cells, groups))["the gap narrows"]
    assert gap["verdict"] == "no verdict" and gap["p"] is None and "p_holm" not in gap and gap["lo"] is None
    assert "only 1 aligned and 4 underrepresented countries; Welch's interval needs 2 per group" in gap["line"]
    lines, _ = build_summary(cells, groups, run="t", synthetic=True, n_boot=200)
    gap_line = next(line for line in lines if line.startswith("gap (underrepresented - aligned)"))
    assert ", no interval: only 1 aligned" in gap_line and "[" not in gap_line
    assert any("Primary claims, Holm-corrected over the 2 with a test" in line for line in lines)
