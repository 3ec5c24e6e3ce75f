"""The Batch path: a whole grid as one OpenAI Batch JSONL file, its results into the answer cache.

For large runs, instead of asking live:

1. :func:`write_batch_requests` writes the queries the grid runner would send (the same
   :func:`vpersona.llm.grid.plan_requests`, the same request bodies as
   :class:`~vpersona.llm.backends.openai_backend.OpenAIBackend`; queries already cached are skipped)
   as OpenAI Batch JSONL: one line per query with ``custom_id`` (= the cache key), ``method``,
   ``url: /v1/chat/completions`` and ``body``. ``vllm run-batch`` reads the same format.
2. The user runs the batch: the OpenAI Batch API (``files.create(purpose="batch")`` then
   ``batches.create(..., endpoint="/v1/chat/completions")``; see docs/openai_vllm.md), or
   ``vllm run-batch -i requests.jsonl -o results.jsonl --model M``.
3. :func:`read_batch_results` reads the results JSONL (and the error file, if any), parses each
   answer with the estimator and stores it in the SQLite cache under the same key a live run uses.
   :func:`vpersona.llm.grid.run_grid` with the same inputs then runs entirely from the cache.

Lines that failed (an ``error`` object, a non-200 status, a reply without the requested logprobs,
unparseable JSON, an id not in this grid) are counted and reported, never fatal: their queries
stay uncached, so the next ``run_grid`` asks only those live, or a new batch is written for them.

The cache key contains the backend identity (model and base URL): write, read and run with
``OpenAIBackend`` objects of the same model and base URL.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd

from vpersona.llm.backends.base import BackendError
from vpersona.llm.backends.openai_backend import reply_from_completion, request_body
from vpersona.llm.cache import AnswerCache
from vpersona.data.catalog import Catalog
from vpersona.llm.grid import GridPlan, plan_requests

ENDPOINT = "/v1/chat/completions"
# OpenAI's limits per input file: 50,000 requests and 200 MB.
MAX_REQUESTS_PER_FILE = 50_000
MAX_BYTES_PER_FILE = 190 * 1024 * 1024


@dataclass
class BatchWriteReport:
    """What :func:`write_batch_requests` wrote. ``files``: JSONL paths in order."""

    files: list[Path]
    requests: int          # lines written (distinct queries not yet cached)
    already_cached: int    # distinct queries skipped because the cache has them
    unique_queries: int    # distinct queries in the grid

    def __str__(self) -> str:
        names = ", ".join(str(f) for f in self.files) or "no file (nothing left to ask)"
        return (f"{self.requests} requests written to {names}; {self.already_cached} of "
                f"{self.unique_queries} distinct queries were already cached")


@dataclass
class BatchReadReport:
    """What :func:`read_batch_results` did with each result line.

    ``stored``: new answers put in the cache. ``already_cached``: answers the cache had.
    ``failed``: lines counted by reason (``error``: an error object; ``http_<status>``;
    ``bad_reply``: not a usable chat completion, e.g. no logprobs; ``malformed``: not a JSON
    result line; ``unknown_id``: a custom_id not in this grid; ``duplicate``: a second result for
    the same id). ``missing``: queries of the grid (not cached) that got no usable result.
    ``examples``: a few failure messages, for the user to read.
    """

    stored: int = 0
    already_cached: int = 0
    failed: Counter = field(default_factory=Counter)
    missing: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return sum(self.failed.values())

    def __str__(self) -> str:
        failed = ", ".join(f"{k}: {v}" for k, v in sorted(self.failed.items())) or "none"
        text = (f"{self.stored} answers stored, {self.already_cached} already cached; failed lines: "
                f"{failed}; {self.missing} queries still unanswered")
        return text + "".join(f"\n  e.g. {e}" for e in self.examples)


def _plan(pairs, personas, catalog, backend, estimator, order, replicates, seed, estimator_params) -> GridPlan:
    if not hasattr(backend, "model"):
        raise TypeError(f"backend {backend!r}: the Batch path needs an OpenAIBackend (it names the model "
                        f"in each request body and the cache key)")
    return plan_requests(pairs, personas, catalog=catalog, backend_identity=backend.identity(),
                         estimator=estimator, order=order, replicates=replicates, seed=seed, **estimator_params)


def write_batch_requests(pairs: pd.DataFrame, personas: pd.DataFrame, path: str | Path, *, catalog: Catalog,
                         backend, cache: AnswerCache | None = None, estimator: str = "logprobs",
                         order: str = "fixed", replicates: int = 1, seed: int = 0,
                         max_requests_per_file: int = MAX_REQUESTS_PER_FILE,
                         max_bytes_per_file: int = MAX_BYTES_PER_FILE, **estimator_params) -> BatchWriteReport:
    """Write the grid's uncached queries as Batch JSONL at ``path``.

    Arguments as for :func:`vpersona.llm.grid.run_grid`. When the requests exceed one file's limits
    they are split into ``<stem>-0001.jsonl``, ``<stem>-0002.jsonl``, ... Same inputs, same bytes.
    """
    plan = _plan(pairs, personas, catalog, backend, estimator, order, replicates, seed, estimator_params)
    todo = [r for r in plan.requests if cache is None or r.key not in cache]
    lines = [json.dumps({"custom_id": r.key, "method": "POST", "url": ENDPOINT,
                         "body": request_body(backend.model, r.query, getattr(backend, "extra_body", None))},
                        ensure_ascii=False, separators=(",", ":")) + "\n" for r in todo]
    chunks: list[list[str]] = []
    size = 0
    for line in lines:
        n_bytes = len(line.encode("utf-8"))
        if not chunks or len(chunks[-1]) >= max_requests_per_file or size + n_bytes > max_bytes_per_file:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += n_bytes
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files = [path] if len(chunks) == 1 else [path.with_name(f"{path.stem}-{i:04d}{path.suffix}")
                                             for i in range(1, len(chunks) + 1)]
    for file, chunk in zip(files, chunks):
        file.write_text("".join(chunk), encoding="utf-8")
    return BatchWriteReport(files=files, requests=len(todo), already_cached=len(plan.requests) - len(todo),
                            unique_queries=len(plan.requests))


def read_batch_results(results: str | Path | Iterable[str | Path], pairs: pd.DataFrame, personas: pd.DataFrame,
                       *, catalog: Catalog, backend, cache: AnswerCache, estimator: str = "logprobs",
                       order: str = "fixed", replicates: int = 1, seed: int = 0,
                       **estimator_params) -> BatchReadReport:
    """Store the answers of Batch result file(s) in ``cache``; report every line that failed.

    Arguments after ``results`` must be those given to :func:`write_batch_requests` (they rebuild
    the plan, so each ``custom_id`` finds its prompt and estimator).
    """
    plan = _plan(pairs, personas, catalog, backend, estimator, order, replicates, seed, estimator_params)
    by_key = {r.key: r for r in plan.requests}
    report = BatchReadReport()
    seen: set[str] = set()
    paths = [results] if isinstance(results, (str, Path)) else list(results)
    for path in map(Path, paths):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    _read_line(line, f"{path.name}:{number}", by_key, seen, backend, cache, plan, report)
    report.missing = sum(1 for key in by_key if key not in seen and key not in cache)
    return report


def _read_line(line: str, where: str, by_key: dict, seen: set, backend, cache: AnswerCache,
               plan: GridPlan, report: BatchReadReport) -> None:
    def expect(custom_id):
        request = by_key.get(custom_id)
        if request is None:
            return None
        params = request.query.param_dict
        return (bool(params.get("logprobs") or params.get("top_logprobs") is not None), int(params.get("n") or 1),
                lambda reply: plan.estimator.parse(reply, request.prompt).to_json())

    read_result_line(line, where, expect, seen, cache, report, backend=backend.kind, estimator=plan.estimator.name,
                     model=backend.identity().get("model"))


def read_result_line(line: str, where: str, expect, seen: set, cache: AnswerCache, report: BatchReadReport, *,
                     backend: str, estimator: str, model: str | None) -> None:
    """Check one Batch result line and store its reply. ``expect(custom_id)`` gives
    ``(want_logprobs, n, parse)`` for an id of this grid (``parse(reply)`` -> the answer JSON to
    store, or None to leave it to the grid), or None for an unknown id."""
    def fail(reason: str, message: str) -> None:
        report.failed[reason] += 1
        if len(report.examples) < 5:
            report.examples.append(f"{where}: {message}")

    try:
        record = json.loads(line)
        custom_id = record["custom_id"]
    except (ValueError, KeyError, TypeError):
        return fail("malformed", f"not a Batch result line: {line[:120].strip()!r}")
    expected = expect(custom_id)
    if expected is None:
        return fail("unknown_id", f"custom_id {str(custom_id)[:70]!r} is not a query of this grid "
                                  f"(another grid, estimator, or backend model/base URL?)")
    if custom_id in seen:
        return fail("duplicate", f"second result for custom_id {custom_id[:16]}...")
    response = record.get("response") or {}
    status = response.get("status_code")
    body = response.get("body")
    error = record.get("error")
    if error or status is None:  # OpenAI: {"code", "message"}; vLLM run-batch: a message string
        if isinstance(error, dict):
            error = f"{error.get('code') or ''} {error.get('message') or error}".strip()
        return fail("error", str(error or "no response and no error")[:300])
    if status != 200:
        message = ((body or {}).get("error") or {}).get("message") if isinstance(body, dict) else body
        return fail(f"http_{status}", f"HTTP {status}: {str(message)[:200]}")
    want_logprobs, wanted, parse = expected
    try:
        reply = reply_from_completion(body, want_logprobs=want_logprobs, source=f"Batch result {where}")
    except BackendError as e:
        return fail("bad_reply", str(e))
    if len(reply.texts) < wanted:
        return fail("bad_reply", f"{len(reply.texts)} completions for n={wanted}")
    seen.add(custom_id)
    if custom_id in cache:
        report.already_cached += 1
        return
    cache.put(custom_id, reply, backend=backend, estimator=estimator, model=model, answer=parse and parse(reply))
    report.stored += 1
