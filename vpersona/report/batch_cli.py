"""``vpersona batch``: a run's grid through the OpenAI Batch API or ``vllm run-batch``.

The grid is read from the run folder (``data/pairs.csv``, ``data/personas.csv``, as notebook 02
writes them); answers go to the answer cache (default ``<outputs>/llm_cache.sqlite``, the one
notebook 02 uses), so notebook 02 afterwards runs from the cache. The mechanism is
:mod:`vpersona.llm.batch_api`; the state of each run's batches is in ``data/batches.json``.

    vpersona batch submit RUN --model gpt-4o-mini      # write, upload, create (resumable)
    vpersona batch status RUN
    vpersona batch collect RUN                          # poll, download, store (resumable)
    vpersona batch write RUN --model M --base-url URL --shards 4   # files for vllm run-batch
    vpersona batch read RUN --model M --base-url URL    # their results-*.jsonl into the cache
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    batch = sub.add_parser("batch", help="run a grid through the OpenAI Batch API or vllm run-batch")
    steps = batch.add_subparsers(dest="step", required=True)
    for name, text in (("submit", "write request files for what is not cached, upload them, create batches"),
                       ("status", "each batch's status and request counts"),
                       ("collect", "wait for the batches, download their results, store them in the cache"),
                       ("write", "only write request files (for vllm run-batch), sharded"),
                       ("read", "read results-*.jsonl (vllm run-batch) beside the request files into the cache")):
        p = steps.add_parser(name, help=text)
        p.add_argument("run", type=Path, help="run folder (outputs/<run_id>)")
        p.add_argument("--cache", type=Path, default=None, help="answer cache (default: <run>/../llm_cache.sqlite)")
        if name in ("submit", "write", "read"):
            p.add_argument("--model", required=True, help="model name, as in notebook 02's MODEL")
            p.add_argument("--base-url", default=None, help="as notebook 02's BASE_URL (default: OpenAI's API)")
            p.add_argument("--estimator", default="logprobs")
            p.add_argument("--order", default="fixed")
            p.add_argument("--replicates", type=int, default=1)
            p.add_argument("--seed", type=int, default=2026, help="as notebook 02's SEED")
        if name in ("submit", "write"):
            p.add_argument("--shards", type=int, default=1, help="split the requests into N sets of files")
        if name == "collect":
            p.add_argument("--poll", type=float, default=10.0, help="first polling interval, seconds (then x1.5)")
            p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")


def main(args) -> int:
    import openai
    import pandas as pd

    from vpersona.data.catalog import load_catalog
    from vpersona.llm import batch_api
    from vpersona.llm.backends.base import BackendError
    from vpersona.llm.backends.openai_backend import OpenAIBackend
    from vpersona.llm.cache import AnswerCache, resolve_cache_path

    run = args.run
    cache_path = args.cache or resolve_cache_path("auto", run.resolve())
    try:
        with AnswerCache(cache_path) as cache:
            if args.step in ("status", "collect"):
                client = _client(batch_api.load_state(run)["identity"].get("base_url"))
                if args.step == "status":
                    for row in batch_api.status(run, client):
                        print(row)
                else:
                    print(batch_api.collect(run, cache=cache, client=client,
                                            backoff=batch_api.Backoff(initial=args.poll, timeout=args.timeout)))
                return 0
            backend = OpenAIBackend(args.model, base_url=args.base_url)
            grid = {"estimator": args.estimator, "order": args.order, "replicates": args.replicates, "seed": args.seed}
            if args.step == "read":
                return _read(run, cache, backend, batch_api, args.estimator)
            missing = [f for f in ("pairs.csv", "personas.csv") if not (run / "data" / f).exists()]
            if missing:
                print(f"[vpersona] {run}/data lacks {', '.join(missing)}: run notebook 02 up to the plan first",
                      file=sys.stderr)
                return 1
            pairs, personas = (pd.read_csv(run / "data" / f, keep_default_na=False, na_values=[""])
                               for f in ("pairs.csv", "personas.csv"))
            if args.step == "write":
                files = batch_api.write_requests(pairs, personas, run / "data" / "batch", catalog=load_catalog(),
                                                 backend=backend, cache=cache, shards=args.shards, **grid)
                for f in files:
                    out = f["path"].replace("requests-", "results-")
                    print(f"vllm run-batch -i {f['path']} -o {out} --model {args.model}   # shard {f['shard']}, "
                          f"{f['requests']} requests")
                return 0
            state = batch_api.submit(run, pairs, personas, catalog=load_catalog(), backend=backend, cache=cache,
                                     client=_client(args.base_url), shards=args.shards, grid=grid)
            for r in state["rounds"][-1:]:
                for f in r["files"]:
                    print(f"round {r['round']}: {Path(f['path']).name} ({f['requests']} requests) -> {f['batch_id']}")
            return 0
    except (BackendError, FileNotFoundError, ValueError, TimeoutError, openai.OpenAIError) as err:
        print(f"[vpersona] {err}", file=sys.stderr)
        return 1


def _read(run: Path, cache, backend, batch_api, estimator: str) -> int:
    requests = sorted((run / "data" / "batch").glob("requests-s*.jsonl"))
    report = None
    for path in requests:
        results = path.with_name(path.name.replace("requests-", "results-"))
        if not results.exists():
            print(f"no {results.name} yet (from {path.name})", file=sys.stderr)
            continue
        report = batch_api.read_results(results, path, cache=cache, model=backend.model, report=report,
                                        estimator=estimator)
    print(report if report is not None else "no results file found")
    return 0


def _client(base_url: str | None):
    import openai
    import os
    from vpersona.llm.backends.openai_backend import DEFAULT_BASE_URL
    if base_url and base_url != DEFAULT_BASE_URL and not os.environ.get("OPENAI_API_KEY"):
        return openai.OpenAI(base_url=base_url, api_key="EMPTY")
    return openai.OpenAI(base_url=base_url) if base_url else openai.OpenAI()


if __name__ == "__main__":  # pragma: no cover
    ap = argparse.ArgumentParser(prog="vpersona")
    add_parser(ap.add_subparsers(dest="command", required=True))
    sys.exit(main(ap.parse_args()))
