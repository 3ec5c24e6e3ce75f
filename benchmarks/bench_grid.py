"""Grid-harness overhead: plan, dedup, cache, query and answers table with an instant backend.

The backend answers every query at once with one fixed Reply (ten top logprobs, usage, a small
raw object): no model time, so what is measured is the harness alone. The cache is a fresh
(cold) SQLite file, so every prompt is rendered, keyed, looked up, "asked", stored and written
to the answers table. Each size runs in its own process, so peak RSS (``ru_maxrss``) is per size.

``--impl old`` drives the API of main before streaming (``run_grid`` -> DataFrame ->
``to_csv``, as notebook 02 did); ``new`` streams the same pairs table (``stream_grid`` straight to
CSV.gz); ``new-chunks`` feeds the pairs as a generator of chunks, so nothing grows with the grid.
Wall seconds depend on what else runs on the machine (``load_avg_1min`` is recorded); CPU
microseconds per prompt (``time.process_time``) much less.
``--tree`` picks the checkout whose ``vpersona`` is imported, so old and new run side by side:

    python benchmarks/bench_grid.py --sizes 10000 100000 1000000 --tree /work/main --impl all \\
        --tree-new . --json outputs/bench_grid.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ITEMS_PER_PERSONA = 50


def _reply():
    from vpersona.llm.backends.base import Reply
    top = {lab: -0.3 * (i + 1) for i, lab in enumerate("ABCDEFGHIJ")}
    return Reply(texts=["A"], top_logprobs=top, usage={"prompt_tokens": 90, "completion_tokens": 1},
                 raw={"id": "bench", "model": "instant"})


class InstantBackend:
    """Returns one fixed Reply without waiting: the harness is all that is left to measure."""

    kind = "instant"

    def __init__(self):
        self.reply = _reply()

    def identity(self) -> dict:
        return {"kind": self.kind, "model": "instant-1"}

    async def acomplete(self, query):
        return self.reply


def grid(n_prompts: int, chunked: bool = False):
    """Persona-major plan of ``n_prompts`` pairs: n/50 distinct personas x 50 catalog questions.
    ``chunked``: the pairs as a generator of 10,000-row tables (never whole in memory)."""
    import numpy as np
    import pandas as pd
    from vpersona import load_catalog
    catalog = load_catalog()
    items = [i.code for i in catalog if i.n_options >= 2][:ITEMS_PER_PERSONA]
    n_personas = max(1, n_prompts // len(items))
    personas = pd.DataFrame({"persona_id": range(n_personas), "country": "NGA", "kind": "value",
                             "text": [f"You are respondent {i}. God is very important in your life." for i in range(n_personas)],
                             "multiplicity": 1})

    def pairs_of(first: int, stop: int):  # numpy-built: the plan's own cost is not the harness's
        return pd.DataFrame({"persona_id": np.repeat(np.arange(first, stop), len(items)), "country": "NGA",
                             "kind": "value", "item": np.tile(np.array(items, dtype=object), stop - first),
                             "multiplicity": 1})

    if chunked:
        step = 10_000 // len(items)
        return catalog, personas, (pairs_of(p, min(p + step, n_personas)) for p in range(0, n_personas, step))
    return catalog, personas, pairs_of(0, n_personas)


def machine_speed() -> float:
    """Seconds for a fixed pure-Python loop (10^7 additions): how fast this VM runs right now
    (it varies by +-25% over minutes on the project's shared 2-core machine)."""
    t0, x = time.perf_counter(), 0
    for i in range(10_000_000):
        x += i
    return round(time.perf_counter() - t0, 3)


def one(n_prompts: int, impl: str) -> dict:
    from vpersona.llm.cache import AnswerCache
    from vpersona.llm import grid as grid_module  # imported before the clock starts
    catalog, personas, pairs = grid(n_prompts, chunked=impl == "new-chunks")
    n = len(pairs) if impl != "new-chunks" else (n_prompts // ITEMS_PER_PERSONA) * ITEMS_PER_PERSONA
    with tempfile.TemporaryDirectory() as tmp:
        t0, cpu0 = time.perf_counter(), time.process_time()
        with AnswerCache(Path(tmp) / "cache.sqlite") as cache:
            if impl == "old":
                run_grid = grid_module.run_grid
                table = run_grid(pairs, personas, catalog=catalog, backend=InstantBackend(), cache=cache, progress=False)
                table.to_csv(Path(tmp) / "answers.csv", index=False, float_format="%.10g")
                rows = len(table)
            else:
                stats = grid_module.stream_grid(pairs, personas, Path(tmp) / "answers.csv.gz", catalog=catalog,
                                    backend=InstantBackend(), cache=cache, progress=False)
                rows = stats["rows"]
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert rows == n
    return {"impl": impl, "prompts": n, "seconds": round(seconds, 2),
            "us_per_prompt": round(1e6 * seconds / n, 1), "cpu_us_per_prompt": round(1e6 * cpu / n, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load_avg_1min": round(os.getloadavg()[0], 1), "py_loop_s": machine_speed()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--tree", default=None, help="checkout for --impl old (default: this one)")
    ap.add_argument("--tree-new", default=str(Path(__file__).resolve().parents[1]), help="checkout for new")
    ap.add_argument("--impl", choices=["old", "new", "new-chunks", "all"], default="all")
    ap.add_argument("--skip-old-above", type=int, default=None, help="run old only up to this size")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", nargs=2, metavar=("N", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])))
        return 0
    impls = ["old", "new", "new-chunks"] if args.impl == "all" else [args.impl]
    results = []
    for n in args.sizes:
        for impl in impls:
            if impl == "old" and args.skip_old_above and n > args.skip_old_above:
                continue
            tree = args.tree_new if impl.startswith("new") else (args.tree or args.tree_new)
            env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
            proc = subprocess.run([sys.executable, __file__, "--one", str(n), impl], env=env,
                                  capture_output=True, text=True)
            if proc.returncode:
                print(f"{impl} at {n} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(" | ".join(f"{k}={v}" for k, v in results[-1].items()), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
