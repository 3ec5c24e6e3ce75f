"""The summary's claim lines on constructed cell tables where the answer is known."""
import json

import numpy as np
import pandas as pd
import pytest

from vpersona.evaluate.crosscultural import country_groups
from vpersona.report.summary import build_summary, claims, default_order, default_pairs

COUNTRIES = ["AUS", "NZL", "DEU", "NGA", "PAK", "JPN"]  # 3 aligned, 3 underrepresented


def make_cells(offsets: dict, *, noise=0.02, gap=None, seed=0, n_items=10, diversity=None):
    """Cells with jsd = base(country, item) + offsets[method] + noise; ``gap``: method -> extra error
    of the underrepresented countries; diversity_ratio = diversity[method] (default 1) + noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.5, (len(COUNTRIES), n_items))
    rows = []
    for method, off in offsets.items():
        V = base + off + rng.normal(0, noise, base.shape)
        V[3:] += (gap or {}).get(method, 0.0)
        for c, country in enumerate(COUNTRIES):
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
    assert found["value < country"]["verdict"] == "yes" and found["value < country"]["wins"] == 6
    assert found["value < demographic"]["verdict"] == "no"
    assert found["value+T < value"]["verdict"] == "yes"
    assert found["the gap narrows"]["verdict"] == "yes" and found["the gap narrows"]["mean"] < -0.15
    assert found["value < regression"]["verdict"] == "no" and "value+T < regression" in found
    assert found["value < country"]["line"].startswith("value < country: yes (Δ JSD -0.1")
    assert "items bootstrap; value wins in 6/6 countries" in found["value < country"]["line"]


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
    assert "SYNTHETIC" in lines[0] and "items bootstrap (10 items)" in lines[1]
    assert any(line.startswith("SYNTHETIC respondents: the claims below") for line in lines)
    assert lines[-1].startswith("  value+T < regression: no")
    assert summary["methods"]["value"]["n_items"] == 10 and summary["methods"]["value"]["n_cells"] == 60
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
