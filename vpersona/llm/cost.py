"""Token usage and what it costs: per-model totals, and US dollars when a price table is given.

A price table is a YAML file the *user* keeps up to date (prices change; vpersona ships only
``vpersona/resources/prices.example.yaml``, an example to be checked)::

    models:
      gpt-4o-mini: {input: 0.15, cached_input: 0.075, output: 0.60}   # USD per 1M tokens
    batch_discount: 0.5                                                 # Batch API: 50% off

Model names in replies often carry a date (``gpt-4o-mini-2024-07-18``): they match the longest
table entry they start with followed by ``-``.

:func:`usage_from_cache` totals what an answer cache holds; :func:`estimate_cost` answers "what
will this run cost?" before it starts.
"""
from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd
import yaml

from vpersona.llm.orderings import orderings

TOKEN_COLUMNS = ("prompt_tokens", "cached_prompt_tokens", "completion_tokens")
PER = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. ``cached_input``: price of prompt tokens served from the provider's
    prompt cache (None: same as ``input``)."""

    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, Price]
    batch_discount: float = 0.0
    source: str = "<dict>"

    def lookup(self, model: str) -> Price | None:
        """The price of ``model``: exact name, else the longest entry ``model`` starts with + '-'."""
        if model in self.prices:
            return self.prices[model]
        matches = [name for name in self.prices if model.startswith(name + "-")]
        return self.prices[max(matches, key=len)] if matches else None


def load_prices(path: str | Path) -> PriceTable:
    """Read a price table (see the module docstring for the layout)."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    models = raw.get("models")
    if not isinstance(models, dict) or not models:
        raise ValueError(f"price table {path}: expected a mapping 'models:' of model -> {{input, output}}")
    prices = {}
    for name, entry in models.items():
        if not isinstance(entry, dict) or not {"input", "output"} <= set(entry):
            raise ValueError(f"price table {path}: model {name!r} needs 'input' and 'output' "
                             f"(USD per 1M tokens), got {entry!r}")
        values = {k: entry.get(k) for k in ("input", "output", "cached_input")}
        for k, v in values.items():
            if v is not None and (not isinstance(v, (int, float)) or v < 0):
                raise ValueError(f"price table {path}: {name}.{k} = {v!r}: expected a number >= 0")
        prices[str(name)] = Price(float(values["input"]), float(values["output"]),
                                  None if values["cached_input"] is None else float(values["cached_input"]))
    discount = float(raw.get("batch_discount", 0.0))
    if not 0.0 <= discount < 1.0:
        raise ValueError(f"price table {path}: batch_discount = {discount!r}: expected a fraction in [0, 1)")
    return PriceTable(prices, discount, str(path))


def usage_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """Per-model totals of calls and tokens from usage records.

    Each record has ``model`` and any of ``prompt_tokens``, ``cached_prompt_tokens``,
    ``completion_tokens`` (missing counts as 0), e.g. ``{"model": m, **reply.usage}``.
    """
    rows = [{"model": str(r["model"]), **{c: int(r.get(c) or 0) for c in TOKEN_COLUMNS}} for r in records]
    frame = pd.DataFrame(rows, columns=["model", *TOKEN_COLUMNS])
    table = (frame.groupby("model", sort=True)
             .agg(calls=("model", "size"), **{c: (c, "sum") for c in TOKEN_COLUMNS})
             .reset_index())
    table["total_tokens"] = table["prompt_tokens"] + table["completion_tokens"]
    return table


def usage_from_cache(cache) -> pd.DataFrame:
    """Per-model totals (as :func:`usage_table`) of every answer stored in an answer cache
    (``vpersona.llm.cache.AnswerCache`` or its path), read through a separate read-only connection."""
    path = Path(getattr(cache, "path", cache))
    if not path.is_file():
        raise FileNotFoundError(f"answer cache {path} does not exist")
    query = """SELECT COALESCE(model, backend) AS model, COUNT(*) AS calls,
                      SUM(prompt_tokens) AS prompt_tokens,
                      SUM(COALESCE(json_extract(reply, '$.usage.cached_prompt_tokens'), 0)) AS cached_prompt_tokens,
                      SUM(completion_tokens) AS completion_tokens
               FROM answers GROUP BY 1 ORDER BY 1"""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        table = pd.read_sql_query(query, conn)
    table["total_tokens"] = table["prompt_tokens"] + table["completion_tokens"]
    return table.astype({c: "int64" for c in ("calls", *TOKEN_COLUMNS, "total_tokens")})


def cost_report(usage: pd.DataFrame, prices: PriceTable | None = None, *, batch: bool = False) -> pd.DataFrame:
    """``usage`` (from :func:`usage_table`) with ``input_usd``, ``output_usd``, ``total_usd``.

    Without a price table, or for a model the table lacks, the dollar columns are NaN (unknown,
    not zero) and ``priced`` is False. ``batch``: apply the table's Batch discount.
    """
    report = usage.copy()
    inputs, outputs, priced = [], [], []
    for row in report.itertuples(index=False):
        price = prices.lookup(row.model) if prices is not None else None
        if price is None:
            inputs.append(math.nan), outputs.append(math.nan), priced.append(False)
            continue
        factor = (1.0 - prices.batch_discount) if batch else 1.0
        cached = min(row.cached_prompt_tokens, row.prompt_tokens)
        cached_price = price.input if price.cached_input is None else price.cached_input
        inputs.append(factor * ((row.prompt_tokens - cached) * price.input + cached * cached_price) / PER)
        outputs.append(factor * row.completion_tokens * price.output / PER)
        priced.append(True)
    report["input_usd"], report["output_usd"] = inputs, outputs
    report["total_usd"] = report["input_usd"] + report["output_usd"]
    report["priced"] = priced
    return report


def estimate_cost(n_prompts: int, mean_prompt_tokens: float, *, model: str, prices: PriceTable,
                  mean_completion_tokens: float = 1.0, batch: bool = False) -> dict:
    """Expected tokens and USD of ``n_prompts`` requests before a run starts.

    ``mean_completion_tokens`` is per request, all ``n`` samples together (1 for the logprobs
    estimator). Prompt caching discounts are ignored: the estimate errs on the high side.
    """
    if n_prompts < 0 or mean_prompt_tokens < 0 or mean_completion_tokens < 0:
        raise ValueError("n_prompts, mean_prompt_tokens and mean_completion_tokens must be >= 0")
    price = prices.lookup(model)
    if price is None:
        raise KeyError(f"model {model!r} is not in the price table {prices.source}; "
                       f"it has {sorted(prices.prices)}")
    factor = (1.0 - prices.batch_discount) if batch else 1.0
    prompt_tokens = n_prompts * mean_prompt_tokens
    completion_tokens = n_prompts * mean_completion_tokens
    input_usd = factor * prompt_tokens * price.input / PER
    output_usd = factor * completion_tokens * price.output / PER
    return {"model": model, "n_prompts": int(n_prompts), "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "batch": batch, "input_usd": input_usd,
            "output_usd": output_usd, "total_usd": input_usd + output_usd, "price_source": prices.source}


CHARS_PER_TOKEN = 4.0      # rough English average; the estimate is for planning, not billing
PROMPT_OVERHEAD_TOKENS = 40  # chat template, answer options' labels and the instruction


def estimate_grid_cost(personas: pd.DataFrame, pairs: pd.DataFrame, *, model: str, catalog,
                       prices: str | Path | PriceTable | None = None, replicates: int = 1,
                       order: str = "fixed", mean_completion_tokens: float = 1.0) -> dict:
    """Plan a grid before it runs: number of prompts (one per pair, replicate and option
    ordering of ``order`` -- 2 for pair, K for cyclic --, before deduplication and cache hits, so
    an upper bound) and tokens estimated from the texts' lengths; dollars when a price table is
    given (else ``total_usd`` is None)."""
    text = personas.drop_duplicates("persona_id").set_index("persona_id")["text"].str.len()
    question = {c: len(catalog[c].text) + sum(len(lab) + 4 for _, lab in catalog[c].options)
                for c in pairs["item"].unique()}
    chars = pairs["persona_id"].map(text).to_numpy() + pairs["item"].map(question).to_numpy()
    per_pair = pairs["item"].map({c: len(orderings(catalog[c].n_options, order)) for c in pairs["item"].unique()})
    n_prompts = int(per_pair.sum() * replicates)
    mean_tokens = float(chars.mean() / CHARS_PER_TOKEN + PROMPT_OVERHEAD_TOKENS) if len(pairs) else 0.0
    if prices is None:
        return {"model": model, "n_prompts": n_prompts, "prompt_tokens": n_prompts * mean_tokens,
                "completion_tokens": n_prompts * mean_completion_tokens, "total_usd": None,
                "note": "no price table given (PRICE_TABLE): dollars unknown"}
    table = prices if isinstance(prices, PriceTable) else load_prices(prices)
    return estimate_cost(n_prompts, mean_tokens, model=model, prices=table,
                         mean_completion_tokens=mean_completion_tokens)


def run_cost(run_stats: Mapping, *, model: str, prices: str | Path | PriceTable | None = None) -> dict:
    """Tokens a grid run actually sent (its ``run_stats``) and, with a price table, what they cost."""
    usage = usage_table([{"model": model, "prompt_tokens": run_stats.get("prompt_tokens", 0),
                          "completion_tokens": run_stats.get("completion_tokens", 0)}])
    table = None if prices is None else (prices if isinstance(prices, PriceTable) else load_prices(prices))
    row = cost_report(usage, table).iloc[0].to_dict()
    row["calls"] = int(run_stats.get("calls", 0))
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


class CostNotConfirmed(RuntimeError):
    """A paid run stopped before its first request because its cost was not confirmed."""


def confirm(estimate: dict, confirmed: bool) -> None:
    """Stop before any request unless ``confirmed``; the message carries the estimate."""
    if not confirmed:
        usd = estimate.get("total_usd")
        money = f"about ${usd:,.2f}" if usd is not None else "an unknown amount (no PRICE_TABLE given)"
        raise CostNotConfirmed(f"{estimate['n_prompts']:,} prompts, ~{estimate['prompt_tokens']:,.0f} prompt tokens, "
                               f"{money} for {estimate['model']}: nothing was sent. "
                               "Rerun with -p CONFIRM_COST true to go ahead")


def gpu_hours(usage: Mapping | pd.DataFrame, *, prefill_tokens_per_s: float, decode_tokens_per_s: float,
              gpus: int = 1, usd_per_gpu_hour: float | None = None, scale: float = 1.0) -> dict:
    """GPU time of a run on your own servers, from its token counts and your measured throughput.

    ``usage``: token totals (``prompt_tokens``, ``cached_prompt_tokens``, ``completion_tokens``),
    e.g. a run's ``run_stats`` or :func:`usage_from_cache` (summed over models). Prompt tokens the
    server's prefix cache served (``cached_prompt_tokens``; vLLM reports them with
    ``--enable-prompt-tokens-details``) are not computed again. ``prefill_tokens_per_s`` /
    ``decode_tokens_per_s``: one GPU's (or replica's) throughput for this model at the
    concurrency you run, measured with e.g. ``vllm bench serve``. ``scale``: multiply the counts,
    e.g. ``full_grid_prompts / pilot_prompts`` to project a pilot run to the whole grid. The two
    phases are added (no overlap assumed): an upper bound.
    """
    if isinstance(usage, pd.DataFrame):
        usage = {c: int(usage[c].sum()) for c in TOKEN_COLUMNS if c in usage}
    if min(prefill_tokens_per_s, decode_tokens_per_s) <= 0 or gpus < 1 or scale < 0:
        raise ValueError("throughputs must be > 0 tokens/s, gpus >= 1 and scale >= 0")
    prompt = scale * float(usage.get("prompt_tokens", 0))
    cached = min(scale * float(usage.get("cached_prompt_tokens", 0)), prompt)
    decode = scale * float(usage.get("completion_tokens", 0))
    seconds = (prompt - cached) / prefill_tokens_per_s + decode / decode_tokens_per_s
    hours = seconds / 3600.0
    return {"prompt_tokens": prompt, "cached_prompt_tokens": cached, "computed_prompt_tokens": prompt - cached,
            "completion_tokens": decode, "gpu_hours": hours, "wall_hours": hours / gpus, "gpus": gpus,
            "usd": None if usd_per_gpu_hour is None else hours * usd_per_gpu_hour}
