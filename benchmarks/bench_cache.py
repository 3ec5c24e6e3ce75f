"""Answer-cache write cost by page size and commit group, through ``AnswerCache.put_many``.

Cache keys are SHA-256 hashes, so every insert lands on a random page of the key index and each
commit rewrites all the pages it dirtied: the cost per reply grows with the cache and falls with
the page size and the rows per commit. This stores ``N`` replies (the grid benchmark's reply, its
parsed answer) into a new cache for each (page size, group, statement) and reports wall and CPU
µs per reply. ``--rows json`` is what ``put_many`` does (the group as one JSON array, one
statement: SQLite works without the GIL); ``many`` is ``executemany`` (its fallback), which takes
the GIL back after every row. ``vpersona.llm.cache.PAGE_SIZE`` and the grid's commit groups are
the chosen values:

    python benchmarks/bench_cache.py --n 1000000 --pages 4096 16384 --groups 1024 16384 --rows json many
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one(n: int, page: int, group: int, rows: str) -> dict:
    import bench_grid
    from vpersona.llm import cache as cache_module
    cache_module.PAGE_SIZE = page
    backend = bench_grid.InstantBackend()
    answer = {"dist": [0.1] * 10, "covered_mass": 0.93, "n_valid": 1, "n_invalid": 0, "flags": []}
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.sqlite"
        t0, cpu0 = time.perf_counter(), time.process_time()
        with cache_module.AnswerCache(path) as cache:
            cache._json_rows = cache._json_rows and rows == "json"
            for i in range(0, n, group):
                cache.put_many([(k, backend.reply, answer) for k in keys[i:i + group]], backend="instant",
                               estimator="logprobs", model="instant-1")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        size = path.stat().st_size
    return {"replies": n, "page_size": page, "group": group, "rows": rows, "us_per_reply": round(1e6 * seconds / n, 1),
            "cpu_us_per_reply": round(1e6 * cpu / n, 1), "file_mb": round(size / 1e6)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--pages", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--groups", type=int, nargs="+", default=[1024, 16384])
    ap.add_argument("--rows", nargs="+", choices=["json", "many"], default=["json"])
    ap.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        n, page, group, rows = args.one
        print(json.dumps(one(int(n), int(page), int(group), rows)))
        return 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for page in args.pages:
        for group in args.groups:
            for rows in args.rows:  # each its own process: nothing of one run warms the next
                out = subprocess.run([sys.executable, __file__, "--one", str(args.n), str(page), str(group), rows],
                                     env=env, capture_output=True, text=True, check=True).stdout
                print(" | ".join(f"{k}={v}" for k, v in json.loads(out.strip().splitlines()[-1]).items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
