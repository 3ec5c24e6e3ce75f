"""Token usage -> cost report, price tables, and the pre-run estimate (vpersona.llm.cost)."""
from __future__ import annotations

import math
from importlib import resources

import pytest

from vpersona.llm.backends.base import Reply
from vpersona.llm.cache import AnswerCache
from vpersona.llm.cost import PriceTable, Price, cost_report, estimate_cost, load_prices, usage_from_cache, usage_table

EXAMPLE = resources.files("vpersona").joinpath("resources/prices.example.yaml")


def test_example_price_table_loads_and_says_it_is_an_example():
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "EXAMPLE" in text and "check" in text.lower()
    table = load_prices(EXAMPLE)
    assert table.batch_discount == 0.5 and table.lookup("gpt-4o-mini").output > 0


def test_dated_model_names_match_the_longest_prefix():
    table = PriceTable({"gpt-4o": Price(2.5, 10.0), "gpt-4o-mini": Price(0.15, 0.6)})
    assert table.lookup("gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)
    assert table.lookup("gpt-4o-2024-08-06") == Price(2.5, 10.0)
    assert table.lookup("gpt-4") is None and table.lookup("gpt-4omini") is None


def test_usage_table_and_cost_report_arithmetic():
    records = [{"model": "m", "prompt_tokens": 1_000_000, "completion_tokens": 10, "cached_prompt_tokens": 400_000},
               {"model": "m", "prompt_tokens": 1_000_000, "completion_tokens": 990},
               {"model": "unpriced", "prompt_tokens": 5}]
    usage = usage_table(records)
    m = usage.set_index("model").loc["m"]
    assert (m.calls, m.prompt_tokens, m.cached_prompt_tokens, m.completion_tokens) == (2, 2_000_000, 400_000, 1000)
    prices = PriceTable({"m": Price(input=1.0, output=100.0, cached_input=0.5)}, batch_discount=0.5)
    report = cost_report(usage, prices).set_index("model")
    assert report.loc["m", "input_usd"] == pytest.approx(1.6 * 1.0 + 0.4 * 0.5)
    assert report.loc["m", "output_usd"] == pytest.approx(0.1)
    assert math.isnan(report.loc["unpriced", "total_usd"]) and not report.loc["unpriced", "priced"]
    batch = cost_report(usage, prices, batch=True).set_index("model")
    assert batch.loc["m", "total_usd"] == pytest.approx(report.loc["m", "total_usd"] / 2)
    assert cost_report(usage)["total_usd"].isna().all()  # no table: unknown, not zero


def test_usage_from_cache_totals_per_model(tmp_path):
    with AnswerCache(tmp_path / "a.sqlite") as cache:
        for i, model in enumerate(["m1", "m1", "m2"]):
            reply = Reply(texts=["A"], usage={"prompt_tokens": 100, "completion_tokens": 1,
                                               **({"cached_prompt_tokens": 64} if model == "m2" else {})})
            cache.put(f"k{i}", reply, backend="openai", estimator="logprobs", model=model)
    usage = usage_from_cache(tmp_path / "a.sqlite").set_index("model")
    assert usage.loc["m1", "calls"] == 2 and usage.loc["m1", "prompt_tokens"] == 200
    assert usage.loc["m2", "cached_prompt_tokens"] == 64 and usage.loc["m2", "total_tokens"] == 101


def test_estimate_cost_before_a_paper_scale_run():
    prices = PriceTable({"gpt-4o-mini": Price(0.15, 0.60)}, batch_discount=0.5, source="t.yaml")
    est = estimate_cost(1_000_000, 250, model="gpt-4o-mini-2024-07-18", prices=prices)
    assert est["input_usd"] == pytest.approx(37.5) and est["output_usd"] == pytest.approx(0.6)
    assert estimate_cost(1_000_000, 250, model="gpt-4o-mini", prices=prices, batch=True)["total_usd"] == \
        pytest.approx(est["total_usd"] / 2)
    with pytest.raises(KeyError, match="not in the price table t.yaml"):
        estimate_cost(10, 100, model="claude", prices=prices)


@pytest.mark.parametrize("text, message", [
    ("models: {}", "expected a mapping 'models:'"),
    ("models: {m: {input: 1}}", "needs 'input' and 'output'"),
    ("models: {m: {input: -1, output: 1}}", "expected a number >= 0"),
    ("models: {m: {input: 1, output: 1}}\nbatch_discount: 1.5", "batch_discount"),
])
def test_bad_price_tables_are_named(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_prices(path)


def test_estimate_grid_cost_counts_prompts_and_prices_them(tmp_path):
    import pandas as pd
    from vpersona import load_catalog
    from vpersona.llm.cost import estimate_grid_cost, run_cost
    personas = pd.DataFrame({"persona_id": ["a", "b"], "text": ["x" * 400, ""]})
    pairs = pd.DataFrame({"persona_id": ["a", "a", "b"], "item": ["Q6", "Q29", "Q6"]})
    prices = tmp_path / "p.yaml"
    prices.write_text("models:\n  m: {input: 1.0, output: 2.0}\n")
    est = estimate_grid_cost(personas, pairs, model="m", catalog=load_catalog(), prices=prices, replicates=2)
    assert est["n_prompts"] == 6
    assert 100 < est["prompt_tokens"] / 6 < 400           # ~100 persona tokens + question + overhead
    assert est["total_usd"] == pytest.approx(est["prompt_tokens"] * 1e-6 + 6 * 2e-6)
    unknown = estimate_grid_cost(personas, pairs, model="m", catalog=load_catalog())
    assert unknown["total_usd"] is None and unknown["n_prompts"] == 3
    # order debiasing multiplies the prompts: pair = 2 per question, cyclic = K (Q6 and Q29 have 4)
    assert estimate_grid_cost(personas, pairs, model="m", catalog=load_catalog(), order="pair")["n_prompts"] == 6
    assert estimate_grid_cost(personas, pairs, model="m", catalog=load_catalog(), order="cyclic")["n_prompts"] == 12
    spent = run_cost({"prompt_tokens": 1_000_000, "completion_tokens": 0, "calls": 5}, model="m", prices=prices)
    assert spent["total_usd"] == pytest.approx(1.0) and spent["calls"] == 5
    assert run_cost({"prompt_tokens": 10}, model="m")["total_usd"] is None


def test_gpu_hours_from_token_counts_with_prefix_cache_and_projection():
    from vpersona.llm.cost import gpu_hours
    usage = {"prompt_tokens": 9_000_000, "cached_prompt_tokens": 6_000_000, "completion_tokens": 100_000}
    out = gpu_hours(usage, prefill_tokens_per_s=10_000, decode_tokens_per_s=1_000, gpus=4, usd_per_gpu_hour=2.0)
    assert out["computed_prompt_tokens"] == 3_000_000
    assert out["gpu_hours"] == pytest.approx((300 + 100) / 3600) and out["wall_hours"] == pytest.approx(out["gpu_hours"] / 4)
    assert out["usd"] == pytest.approx(2.0 * out["gpu_hours"])
    projected = gpu_hours(usage, prefill_tokens_per_s=10_000, decode_tokens_per_s=1_000, scale=10)
    assert projected["gpu_hours"] == pytest.approx(10 * out["gpu_hours"]) and projected["usd"] is None
    import pandas as pd
    frame = pd.DataFrame([{**usage, "model": "a"}, {**usage, "model": "b"}])
    assert gpu_hours(frame, prefill_tokens_per_s=10_000, decode_tokens_per_s=1_000)["gpu_hours"] == pytest.approx(2 * out["gpu_hours"])
    with pytest.raises(ValueError, match="throughputs"):
        gpu_hours(usage, prefill_tokens_per_s=0, decode_tokens_per_s=1)
