"""Embedded backend throughput on a fixed grid, with and without persona prefix reuse.

    .venv/bin/python benchmarks/bench_embedded.py [--personas 8] [--questions 10] [--repeats 3]
    .venv/bin/python benchmarks/bench_embedded.py --model qwen2.5-1.5b --personas 2 --questions 6 --repeats 2

Runs the same persona-major grid (logprobs estimator, no cache) through two EmbeddedBackend
instances of SmolLM2-135M (or ``--model``: a registry name or GGUF path): one reusing the KV cache across prompts (the default), one clearing it
before every prompt. Reports prompts/s, prompt tokens/s, the share of prompt tokens actually
evaluated, and checks both give bit-identical tables. Modes are interleaved and the median of
``--repeats`` runs is reported, because the machine may be shared. Persona texts are hand-written
value-persona-like descriptions (no survey data).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import pandas as pd

from vpersona import load_catalog
from vpersona.llm.backends.embedded import EmbeddedBackend
from vpersona.core.distributions import prob_columns
from vpersona.llm.grid import run_grid

ITEMS = ["Q1", "Q6", "Q27", "Q33", "Q48", "Q58", "Q131", "Q150", "Q171", "Q240", "Q199", "Q235"]
SENTENCES = [
    "God is {} important in your life.", "You think abortion is {} justifiable.",
    "You are {} proud of your nationality.", "You {} that greater respect for authority would be a good thing.",
    "You feel {} happy these days.", "You think homosexuality is {} justifiable.",
    "You {} signed a petition.", "You think that most people {} be trusted.",
    "For children, you consider independence and determination {} important.",
    "Among the country's aims, you give {} weight to giving people more say in important decisions.",
]
LEVELS = ["very", "rather", "not very", "not at all", "somewhat", "always", "never", "sometimes"]


def persona_table(n: int) -> pd.DataFrame:
    texts = []
    for i in range(n):
        body = " ".join(s.format(LEVELS[(i * 3 + j) % len(LEVELS)]) for j, s in enumerate(SENTENCES))
        texts.append(f"You are a person answering a survey. {body} Answer every question as this person would.")
    return pd.DataFrame({"persona_id": range(n), "country": "XXX", "kind": "value", "text": texts, "multiplicity": 1})


def run_once(backend: EmbeddedBackend, pairs, personas, catalog):
    backend.llm.reset()
    backend.reset_stats()
    t0 = time.perf_counter()
    table = run_grid(pairs, personas, catalog=catalog, backend=backend, cache=None, progress=False, concurrency=1)
    wall = time.perf_counter() - t0
    s = backend.stats
    return table, {"seconds": wall, "prompts": s.prompts, "prompt_tokens": s.prompt_tokens,
                   "evaluated_prompt_tokens": s.evaluated_prompt_tokens}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--personas", type=int, default=8)
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: its own)")
    ap.add_argument("--model", default=None, help="registry name or GGUF path (default: SmolLM2)")
    args = ap.parse_args(argv)

    catalog = load_catalog()
    personas = persona_table(args.personas)
    items = pd.DataFrame({"item": ITEMS[: args.questions]})
    pairs = personas[["persona_id", "country", "kind"]].merge(items, how="cross").assign(multiplicity=1)
    backends = {"reuse": EmbeddedBackend(args.model, n_threads=args.threads, prefix_reuse=True),
                "no_reuse": EmbeddedBackend(args.model, n_threads=args.threads, prefix_reuse=False)}
    for b in backends.values():  # warm-up: first decode allocates compute buffers
        run_once(b, pairs.head(2), personas, catalog)

    runs = {name: [] for name in backends}
    tables = {}
    for _ in range(args.repeats):
        for name, b in backends.items():
            tables[name], stats = run_once(b, pairs, personas, catalog)
            runs[name].append(stats)

    identical = tables["reuse"][prob_columns()].equals(tables["no_reuse"][prob_columns()])
    result = {"grid": f"{args.personas} personas x {args.questions} questions = {len(pairs)} prompts",
              "model": backends["reuse"].identity()["model"], "threads": backends["reuse"].llm.n_threads,
              "cpu_count": os.cpu_count(), "load_avg_1m_at_end": None, "python": platform.python_version(),
              "identical_tables": identical}
    for name, rs in runs.items():
        sec = statistics.median(r["seconds"] for r in rs)
        r0 = rs[0]
        result[name] = {"seconds_median": round(sec, 3), "seconds_all": [round(r["seconds"], 3) for r in rs],
                        "prompts_per_s": round(r0["prompts"] / sec, 2),
                        "prompt_tokens_per_s": round(r0["prompt_tokens"] / sec, 1),
                        "evaluated_tokens_per_s": round(r0["evaluated_prompt_tokens"] / sec, 1),
                        "prompt_tokens": r0["prompt_tokens"], "evaluated_prompt_tokens": r0["evaluated_prompt_tokens"],
                        "evaluated_share": round(r0["evaluated_prompt_tokens"] / r0["prompt_tokens"], 3)}
    result["speedup_reuse_vs_no_reuse"] = round(result["no_reuse"]["seconds_median"] / result["reuse"]["seconds_median"], 2)
    result["load_avg_1m_at_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
