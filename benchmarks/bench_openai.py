"""OpenAI backend throughput: a real local server vs the client's own ceiling.

Sends the same set of rendered logprobs prompts (personas x catalog questions) through
``OpenAIBackend`` with 64 requests in flight to

1. ``python -m llama_cpp.server`` serving the embedded SmolLM2-135M GGUF on loopback (the real
   thing: one model instance, requests answered one after another), and
2. a stub OpenAI-compatible server (FastAPI + uvicorn, in its own process) that answers every
   request instantly with a canned completion: its rate is the client-side ceiling.

Reported per run: requests/s, client CPU milliseconds per request (``time.process_time`` of this
process, i.e. the backend + openai client + httpx), and latency percentiles. Client overhead is
negligible when the client CPU per request is a small fraction of the real server's time per
request.

    .venv/bin/python benchmarks/bench_openai.py                 # both servers, 64 in flight
    .venv/bin/python benchmarks/bench_openai.py --rounds 2 --json outputs/bench_openai.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import urllib.request
from itertools import product
from pathlib import Path

from vpersona.llm.local_server import free_loopback_port, server_process
from vpersona.llm.local_server import llama_server as local_llama_server
from vpersona.llm.backends.openai_backend import OpenAIBackend
from vpersona.data.catalog import load_catalog
from vpersona.llm.estimators import make_estimator
from vpersona.llm.prompts import render

ITEMS = ("Q164", "Q46", "Q57", "Q45", "Q182", "Q184", "Q209", "Q254")
COUNTRIES = ("Nigeria", "Japan", "Brazil", "Germany", "India", "Egypt", "Mexico", "Sweden")
GOD = ("very important", "rather important", "not very important", "not at all important")
TRUST = ("most people can be trusted", "you need to be very careful in dealing with people")


def personas(n: int) -> list[str]:
    """``n`` distinct hand-written value personas (no respondent data)."""
    texts = [f"You live in {c}. God is {g} in your life. You think {t}."
             for c, g, t in product(COUNTRIES, GOD, TRUST)]
    if n > len(texts):
        raise SystemExit(f"--personas {n}: at most {len(texts)} distinct personas are defined")
    return texts[:n]


def queries(n_personas: int, n_items: int):
    catalog, estimator = load_catalog(), make_estimator("logprobs")
    return [estimator.make_query(render(p, catalog[code], estimator="logprobs"))
            for p in personas(n_personas) for code in ITEMS[:n_items]]


# -- servers ---------------------------------------------------------------------------------

def free_port() -> int:
    return free_loopback_port()


def llama_server(port: int):
    return local_llama_server(port=port, threads=1)


def stub_server(port: int):
    argv = [sys.executable, __file__, "--serve-stub", str(port)]
    return server_process(argv, f"http://127.0.0.1:{port}/v1")


def serve_stub(port: int) -> None:
    """An OpenAI-compatible server that answers instantly: the client-side ceiling."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    top = [{"token": t, "logprob": v, "bytes": None} for t, v in
           (("A", -0.4), ("B", -1.6), ("C", -2.5), ("D", -3.1), ("This", -3.9))]
    body = {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": "stub",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "length",
                         "logprobs": {"content": [{"token": "A", "logprob": -0.4, "bytes": None,
                                                   "top_logprobs": top}]}}],
            "usage": {"prompt_tokens": 90, "completion_tokens": 1, "total_tokens": 91}}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "bench"}]}

    @app.post("/v1/chat/completions")
    async def chat():
        return body

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- measurement -----------------------------------------------------------------------------

async def _drive(backend: OpenAIBackend, qs, workers: int) -> list[float]:
    """``workers`` requests in flight at all times; latency = time a request spends in flight."""
    pending = list(reversed(qs))
    latencies = []

    async def worker():
        while pending:
            q = pending.pop()
            t0 = time.perf_counter()
            reply = await backend.acomplete(q)
            latencies.append(time.perf_counter() - t0)
            assert reply.top_logprobs, "no logprobs in reply"

    await asyncio.gather(*(worker() for _ in range(workers)))
    return latencies


def measure(name: str, base_url: str, qs, concurrency: int, warmup: int = 8) -> dict:
    backend = OpenAIBackend("smollm2", base_url=base_url, max_concurrency=concurrency, timeout=600)

    async def run():
        await _drive(backend, qs[:warmup], concurrency)  # connections, server first-request costs
        cpu0, wall0 = time.process_time(), time.perf_counter()
        latencies = await _drive(backend, qs, concurrency)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        await backend.aclose()
        return latencies, cpu, wall

    latencies, cpu, wall = asyncio.run(run())
    q = statistics.quantiles(latencies, n=20)
    return {"server": name, "concurrency": concurrency, "requests": len(qs), "wall_s": round(wall, 3),
            "req_per_s": round(len(qs) / wall, 1), "server_ms_per_req": round(1000 * wall / len(qs), 2),
            "client_cpu_ms_per_req": round(1000 * cpu / len(qs), 3),
            "latency_p50_ms": round(1000 * statistics.median(latencies), 1),
            "latency_p95_ms": round(1000 * q[18], 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--personas", type=int, default=32)
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=4, help="repeat the stub run over the prompt set this many times")
    ap.add_argument("--skip-llama", action="store_true", help="only measure the stub server")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--serve-stub", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_stub:
        serve_stub(args.serve_stub)
        return 0

    os.environ.pop("OPENAI_API_KEY", None)  # local servers: no key, a placeholder is sent
    qs = queries(args.personas, args.items)
    results = []
    with stub_server(free_port()) as url:
        results.append(measure("stub (instant answers)", url, qs * args.rounds, args.concurrency))
    if not args.skip_llama:
        with llama_server(free_port()) as url:
            results.append(measure("llama_cpp.server SmolLM2-135M", url, qs, args.concurrency))
            results.append(measure("llama_cpp.server SmolLM2-135M", url, qs[: len(qs) // 4], 1))
    header = list(results[0])
    print(" | ".join(header))
    for r in results:
        print(" | ".join(str(r[h]) for h in header))
    if len(results) > 1:
        share = results[0]["client_cpu_ms_per_req"] / results[1]["server_ms_per_req"]
        print(f"client CPU per request = {100 * share:.2f}% of the real server's time per request")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(),
                                         "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
