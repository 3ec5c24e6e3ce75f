"""The Batch route end to end: request files -> upload -> batches -> poll -> download -> cache.

Every step is recorded in ``<run>/data/batches.json`` the moment it happens, so a submit or a
collect killed at any point resumes where it stopped: files already written are not rewritten,
uploads and batches already made are not made again (one whose id was not recorded in time is
found again by listing the account's files and batches), downloads already complete are not
fetched again, and reading results into the cache is idempotent.

* :func:`write_requests` streams the grid's uncached queries into Batch JSONL files (the
  request bodies a live run sends, ``custom_id`` = cache key), persona-major, within the API's
  limits per file (50,000 requests, 200 MB) and across ``shards`` (files of one shard go to one
  vLLM server or batch job).
* :func:`submit`: a *round* of files for what is not cached yet, uploaded, one batch per file.
* :func:`status`: each batch's state and request counts. :func:`collect`: polls with exponential
  backoff until every batch of the round ends (``completed``, ``failed``, ``expired``,
  ``cancelled``), downloads output and error files, stores the answers. Queries of failed or
  expired batches stay uncached: the next ``submit`` starts a new round for them only.
* :func:`read_results`: result files of ``vllm run-batch`` (or any runner) into the cache.

Result replies are stored without the parsed answer (the grid parses cached replies), so reading
needs only the request file beside each result file, never the whole grid: memory stays bounded
by one file (≤ 50,000 requests).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from vpersona.llm.batch import ENDPOINT, MAX_BYTES_PER_FILE, MAX_REQUESTS_PER_FILE, BatchReadReport, read_result_line
from vpersona.llm.backends.openai_backend import request_body
from vpersona.llm.cache import AnswerCache
from vpersona.llm.grid import iter_plans

STATE_FILE = "batches.json"
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class Backoff:
    """Polling intervals: ``initial`` seconds, times ``factor`` after each poll, at most
    ``maximum``; give up (raise TimeoutError, state kept: collect again later) after ``timeout``."""

    initial: float = 10.0
    factor: float = 1.5
    maximum: float = 600.0
    timeout: float | None = None


@dataclass
class CollectReport:
    batches: dict = field(default_factory=dict)  # batch id -> final status
    results: BatchReadReport = field(default_factory=BatchReadReport)

    def __str__(self) -> str:
        states = ", ".join(f"{b}: {s}" for b, s in self.batches.items()) or "no batch"
        return f"batches {states}\n{self.results}"


# -- state ---------------------------------------------------------------------------------------

def state_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "data" / STATE_FILE


def load_state(run_dir: str | Path) -> dict:
    path = state_path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"no {path}: run `vpersona batch submit {run_dir}` first")
    return json.loads(path.read_text(encoding="utf-8"))


def save_state(run_dir: str | Path, state: dict) -> None:
    """Atomically: a kill leaves the previous or the new state, never half of one."""
    path = state_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# -- request files -------------------------------------------------------------------------------

def write_requests(pairs, personas, out_dir: str | Path, *, catalog, backend, cache: AnswerCache | None,
                   shards: int = 1, prefix: str = "requests", estimator: str = "logprobs", order: str = "fixed",
                   replicates: int = 1, seed: int = 0, max_requests_per_file: int = MAX_REQUESTS_PER_FILE,
                   max_bytes_per_file: int = MAX_BYTES_PER_FILE, **estimator_params) -> list[dict]:
    """Stream the uncached queries into ``<out_dir>/<prefix>-s<shard>-<n>.jsonl``; grid chunks go
    to the shards in turn (each chunk is whole personas: their shared prefix stays on one server).
    Returns one record per file: path, shard, requests, bytes."""
    if int(shards) < 1:
        raise ValueError(f"shards={shards!r}: expected an integer >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = getattr(backend, "extra_body", None)
    files: list[dict] = []
    open_files: dict[int, tuple] = {}  # shard -> (handle, record)

    def target(shard: int, n_bytes: int):
        handle, rec = open_files.get(shard, (None, None))
        if handle is None or rec["requests"] >= max_requests_per_file or rec["bytes"] + n_bytes > max_bytes_per_file:
            if handle is not None:
                handle.close()
            n = sum(1 for f in files if f["shard"] == shard) + 1
            rec = {"path": str(out_dir / f"{prefix}-s{shard:02d}-{n:04d}.jsonl"), "shard": shard, "requests": 0, "bytes": 0}
            files.append(rec)
            handle = open(rec["path"], "wb")
            open_files[shard] = (handle, rec)
        return handle, rec

    try:
        plans = iter_plans(pairs, personas, catalog=catalog, backend_identity=backend.identity(), estimator=estimator,
                           order=order, replicates=replicates, seed=seed, **estimator_params)
        for i, plan in enumerate(plans):
            cached = cache.existing(r.key for r in plan.requests) if cache is not None else set()
            for r in plan.requests:
                if r.key in cached:
                    continue
                line = (json.dumps({"custom_id": r.key, "method": "POST", "url": ENDPOINT,
                                    "body": request_body(backend.model, r.query, extra)},
                                   ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
                handle, rec = target(i % int(shards), len(line))
                handle.write(line)
                rec["requests"] += 1
                rec["bytes"] += len(line)
    finally:
        for handle, _ in open_files.values():
            handle.close()
    return files


def read_results(results: str | Path, requests: str | Path, *, cache: AnswerCache, backend: str = "openai",
                 estimator: str = "logprobs", model: str | None = None, report: BatchReadReport | None = None
                 ) -> BatchReadReport:
    """Store the replies of one result file whose requests are in ``requests``; report the rest."""
    expected = {}
    with open(requests, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                body = rec["body"]
                expected[rec["custom_id"]] = (bool(body.get("logprobs") or body.get("top_logprobs") is not None),
                                              int(body.get("n") or 1), None)
    report = report if report is not None else BatchReadReport()
    seen: set[str] = set()
    with open(results, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                read_result_line(line, f"{Path(results).name}:{number}", expected.get, seen, cache, report,
                                 backend=backend, estimator=estimator, model=model)
    return report


def unanswered(requests: str | Path, cache: AnswerCache) -> int:
    """Queries of a request file the cache still lacks."""
    with open(requests, encoding="utf-8") as f:
        ids = [json.loads(line)["custom_id"] for line in f if line.strip()]
    return len(ids) - len(cache.existing(ids))


# -- the Batch API ---------------------------------------------------------------------------------

def submit(run_dir: str | Path, pairs, personas, *, catalog, backend, cache: AnswerCache, client, shards: int = 1,
           grid: dict | None = None, completion_window: str = "24h",
           max_requests_per_file: int = MAX_REQUESTS_PER_FILE, max_bytes_per_file: int = MAX_BYTES_PER_FILE) -> dict:
    """Write, upload and create one round of batches for the queries not yet cached (or finish
    the current round's uploads and creations after an interruption). ``grid``: the grid
    arguments (estimator, order, replicates, seed, estimator parameters)."""
    run_dir = Path(run_dir)
    grid = dict(grid or {})
    path = state_path(run_dir)
    state = load_state(run_dir) if path.exists() else {"model": backend.model, "identity": backend.identity(),
                                                          "grid": grid, "rounds": []}
    if state["identity"] != backend.identity() or state["grid"] != grid:
        raise ValueError(f"{path} records batches of another backend or grid ({state['identity']}, {state['grid']}); "
                         f"expected {backend.identity()}, {grid}. Use another run folder")
    current = state["rounds"][-1] if state["rounds"] else None
    if current is None or all(f.get("collected") for f in current["files"]):
        k = len(state["rounds"]) + 1
        files = write_requests(pairs, personas, run_dir / "data" / "batch", catalog=catalog, backend=backend,
                               cache=cache, shards=shards, prefix=f"requests-r{k}", max_requests_per_file=max_requests_per_file,
                               max_bytes_per_file=max_bytes_per_file, **grid)
        if not files:
            return state
        current = {"round": k, "files": files}
        state["rounds"].append(current)
        save_state(run_dir, state)
    for f in current["files"]:
        if not f.get("file_id"):
            f["file_id"] = _find_upload(client, f) or client.files.create(file=Path(f["path"]), purpose="batch").id
            save_state(run_dir, state)
        if not f.get("batch_id"):
            f["batch_id"] = _find_batch(client, f["file_id"]) or client.batches.create(
                input_file_id=f["file_id"], endpoint=ENDPOINT, completion_window=completion_window,
                metadata={"vpersona_run": run_dir.name, "file": Path(f["path"]).name}).id
            f["status"] = "submitted"
            save_state(run_dir, state)
    return state


def _find_upload(client, f: dict) -> str | None:
    """An upload of this file made before an interruption (same name and size)."""
    for item in client.files.list(purpose="batch"):
        if item.filename == Path(f["path"]).name and item.bytes == f["bytes"]:
            return item.id
    return None


def _find_batch(client, file_id: str) -> str | None:
    for item in client.batches.list(limit=100):
        if item.input_file_id == file_id:
            return item.id
    return None


def status(run_dir: str | Path, client) -> list[dict]:
    """Each batch's status and request counts (updated in the state file)."""
    state = load_state(run_dir)
    rows = []
    for r in state["rounds"]:
        for f in r["files"]:
            if f.get("batch_id") and not f.get("collected"):
                _update(f, client.batches.retrieve(f["batch_id"]))
            rows.append({"round": r["round"], "file": Path(f["path"]).name, "requests": f["requests"],
                         "batch_id": f.get("batch_id"), "status": f.get("status"), "counts": f.get("counts")})
    save_state(run_dir, state)
    return rows


def _update(f: dict, batch) -> None:
    f["status"] = batch.status
    f["output_file_id"], f["error_file_id"] = batch.output_file_id, batch.error_file_id
    counts = getattr(batch, "request_counts", None)
    f["counts"] = counts.model_dump() if counts is not None else None
    errors = getattr(batch, "errors", None)
    if errors is not None and getattr(errors, "data", None):
        f["errors"] = [f"{e.code}: {e.message}" for e in errors.data][:5]


def collect(run_dir: str | Path, *, cache: AnswerCache, client, backoff: Backoff = Backoff(),
            sleep=time.sleep) -> CollectReport:
    """Wait for every batch not yet collected, download its output and error files and store
    the answers. Resumable at any point."""
    run_dir = Path(run_dir)
    state = load_state(run_dir)
    report = CollectReport()
    model, estimator = state["model"], state["grid"].get("estimator", "logprobs")
    start, delay = time.monotonic(), backoff.initial
    pending = [f for r in state["rounds"] for f in r["files"] if f.get("batch_id") and not f.get("collected")]
    while pending:
        for f in list(pending):
            if f.get("status") not in TERMINAL:
                _update(f, client.batches.retrieve(f["batch_id"]))
                save_state(run_dir, state)
            if f["status"] in TERMINAL:
                _download_and_read(run_dir, f, client, cache, model, estimator, report.results)
                save_state(run_dir, state)
                pending.remove(f)
            report.batches[f["batch_id"]] = f["status"]
        if pending:
            if backoff.timeout is not None and time.monotonic() - start > backoff.timeout:
                raise TimeoutError(f"{len(pending)} batches still running after {backoff.timeout:g} s "
                                   f"(state kept in {state_path(run_dir)}): run collect again later")
            sleep(delay)
            delay = min(delay * backoff.factor, backoff.maximum)
    for r in state["rounds"]:
        for f in r["files"]:
            report.batches.setdefault(f.get("batch_id"), f.get("status"))
    return report


def _download_and_read(run_dir: Path, f: dict, client, cache, model, estimator, results: BatchReadReport) -> None:
    for kind in ("output", "error"):
        file_id, key = f.get(f"{kind}_file_id"), f"{kind}_path"
        if file_id and not f.get(key):
            target = run_dir / "data" / "batch" / f"{f['batch_id']}-{kind}.jsonl"
            part = target.with_name(target.name + ".part")
            client.files.content(file_id).write_to_file(part)
            os.replace(part, target)
            f[key] = str(target)
    for kind in ("output", "error"):
        if f.get(f"{kind}_path"):
            read_results(f[f"{kind}_path"], f["path"], cache=cache, model=model, estimator=estimator, report=results)
    f["unanswered"] = unanswered(f["path"], cache)
    results.missing += f["unanswered"]
    f["collected"] = True
