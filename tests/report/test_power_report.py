"""The power notebook's helpers: design from the run folder records, cost per size, the figure."""
import pandas as pd

from vpersona.report.power import cost_by_size, planned_design, power_figure

INFO = {"countries": ["AUS", "NGA"], "target_items": ["Q6", "Q185"]}
SIM = {"persona_kinds": ["none", "value"], "n_personas": 5, "estimator": "logprobs", "order": "pair"}


def test_planned_design_reads_the_run_and_adds_the_compared_kinds():
    d = planned_design(INFO, SIM, ("value", "country"))
    assert d.countries == ("AUS", "NGA") and d.items == ("Q6", "Q185") and d.n_personas == 5
    assert d.kinds == ("none", "value", "country") and d.order == "pair"


def test_cost_grows_with_personas_and_says_when_prices_are_the_example():
    costs = cost_by_size(planned_design(INFO, SIM), [2, 4], model="gpt-4o-mini", prices=None)
    assert costs["prompts"].is_monotonic_increasing and (costs["usd"] > 0).all()
    assert set(costs["prices"]) == {"EXAMPLE table"}


def test_power_figure_draws_one_line_per_world():
    curve = pd.DataFrame({"effect": ["a", "a", "b", "b"], "n_personas": [2, 4, 2, 4], "power": [0.2, 0.6, 0.0, 0.1],
                          "power_lo": [0.1, 0.4, 0.0, 0.0], "power_hi": [0.4, 0.8, 0.2, 0.3],
                          "mean_difference": [-0.01, -0.02, 0.0, 0.0]})
    fig = power_figure(curve, planned=4, title="t")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert sum(lab.startswith(("a (", "b (")) for lab in labels) == 2 and any("N = 4" in lab for lab in labels)


def test_save_fig_labels_simulated_answers(tmp_path):
    import matplotlib.pyplot as plt

    from vpersona.report.plots import save_fig
    fig = plt.figure()
    save_fig(fig, tmp_path, "x", synthetic=True, simulated=True)
    footer = " ".join(t.get_text() for t in fig.texts)
    assert "SIMULATED" in footer and "not LLM results" in footer and "SYNTHETIC" in footer
    fig = plt.figure()
    save_fig(fig, tmp_path, "y", synthetic=False)
    assert not any("SIMULATED" in t.get_text() for t in fig.texts) and (tmp_path / "figures" / "y.png").exists()
