"""Power by simulation and the cost of the real run of the same design."""
from importlib import resources

import pytest

from vpersona.evaluate.power import Design, design_cost, fair_null, power, simulate

DESIGN = Design(n_personas=4)
PRICES = str(resources.files("vpersona").joinpath("resources/prices.example.yaml"))


def test_power_is_high_for_a_large_effect_and_low_in_a_fair_null():
    strong = power(DESIGN, {"fidelity": 1.0, "country": 0.0}, n_sim=4, seed=1, n_boot=200)
    assert strong["power"] == 1.0 and strong["mean_difference"] < -0.03 and strong["simulated"]
    assert 0 <= strong["power_lo"] <= strong["power"] <= strong["power_hi"] <= 1
    # a fair null: both arms N distinct texts naming the country, the same noise; the arms differ
    # (not the identical-arms null whose difference is exactly 0), and neither wins
    d, knobs, a, b = fair_null(DESIGN, {"country": 0.2, "noise": 0.3})
    null = power(d, knobs, n_sim=4, seed=1, n_boot=200, a=a, b=b)
    assert null["power"] == 0.0 and null["sd_difference"] > 0  # (a false "no" is as likely: not asserted)
    assert abs(null["mean_difference"]) < null["sd_difference"]
    assert (a, b, knobs["fidelity"]) == ("value+country", "demographic", 0.0)


def test_same_seed_same_cells():
    a = simulate(DESIGN, {"fidelity": 0.7, "noise": 0.3}, 5)
    b = simulate(DESIGN, {"fidelity": 0.7, "noise": 0.3}, 5)
    assert a.equals(b) and a.attrs["simulated"]
    assert not a.equals(simulate(DESIGN, {"fidelity": 0.7, "noise": 0.3}, 6))


def test_design_cost_counts_prompts_per_order_and_prices_them():
    fixed = design_cost(DESIGN, model="gpt-4o-mini", prices=PRICES)
    pair = design_cost(DESIGN.with_(order="pair"), model="gpt-4o-mini", prices=PRICES)
    assert fixed["n_prompts"] == fixed["n_pairs"] > 0 and pair["n_prompts"] == 2 * fixed["n_prompts"]
    assert pair["total_usd"] == pytest.approx(2 * fixed["total_usd"]) and fixed["total_usd"] > 0
    big = design_cost(DESIGN, model="gpt-4o", prices=PRICES)
    assert big["total_usd"] > 10 * fixed["total_usd"]
    assert design_cost(DESIGN, model="gpt-4o-mini")["total_usd"] is None
