"""Ask every persona its questions: the grid runner (docs/method.md, section 2).

``run_grid`` takes the persona plan (``personas``: persona_id, country, kind, text, multiplicity,
...; ``pairs``: persona_id, country, kind, item, multiplicity, one row per persona x question, in
persona-major order) and returns one row per pair (x replicate) with the answer distribution in
catalog option order (``p1..p10``, see ``vpersona.core.distributions``), ``covered_mass``, counts and
flags. ``stream_grid`` does the same but writes the table to a CSV(.gz) file as it goes and keeps
nothing in memory; ``read_answers`` reads such a file back.

How it spends calls: the pairs are taken in chunks of ``chunk_rows`` rows, in their (persona-major)
order, and each chunk is planned, looked up, asked and written before the next one starts, so
memory does not grow with the grid. In a chunk each pair becomes one prompt per option ordering
(``order``, see :mod:`vpersona.llm.orderings`: 1 for fixed/reversed/random, 2 for pair, K for
cyclic; the row's answer is their mean in catalog order) plus, with contextual calibration, one
content-free prompt per persona kind and K (:mod:`vpersona.llm.contextual`); identical queries
(same messages, parameters and replicate) share one cache key and one call; keys already in the
cache cost nothing (a query repeated in a later chunk, e.g. the `none` persona of the next
country, is by then in the cache: a cache hit, not a call); the rest go to the backend with at
most ``concurrency`` in flight, replies committed to the cache in groups by a background thread
(at most ``FLUSH_SECONDS`` after they arrive; :mod:`vpersona.llm.querying`). The table is
computed from the replies alone, so the same inputs and cache give an identical table, whatever
the chunk size.

``plan_requests`` exposes the first half for a whole grid (what would be asked, under which keys)
for other paths, e.g. writing a Batch JSONL file and loading its results into the cache.
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from vpersona.core.collector import fewer_collections
from vpersona.core.progress import progress_bar
from vpersona.llm.answers_file import AnswersWriter, read_answers  # noqa: F401 - read_answers is public here
from vpersona.llm.backends.base import Backend, Reply
from vpersona.llm.cache import HEARTBEAT_SECONDS, AnswerCache, CacheError
from vpersona.llm.contextual import combine_priors
from vpersona.data.catalog import Catalog
from vpersona.core.distributions import KMAX, from_matrix
from vpersona.core.seeds import derive_seed
from vpersona.llm.estimators import Answer, answer_weight, make_estimator
from vpersona.llm.grid_plan import ChunkPlanner, GridPlan, Request  # noqa: F401 - Request is public here
from vpersona.llm.querying import Committer, ask_all, run_coroutine
from vpersona.llm.querying import FLUSH_SECONDS  # noqa: F401 - named in the docstring

PERSONA_KEYS = ("persona_id", "country", "kind")
# Pairs per chunk: memory is O(chunk) (~0.5 GB at this size), the pipeline drains once per chunk,
# and a chunk's replies are committed in a few large groups: each commit rewrites the pages of the
# cache's key index it touched, so at 10^6 answers 32k-row chunks cost ~39 µs per prompt in all
# against ~47 for 16k (benchmarks/bench_grid.py, new-chunks).
CHUNK_ROWS = 32_768


@dataclass
class RunStats:
    """What a grid run cost. ``calls``: queries sent to the backend; ``cache_hits``: distinct
    queries answered from the cache; ``deduplicated``: row orderings that shared a query with
    another of their chunk (repeats across chunks are cache hits); ``prompts_per_row``: orderings per row; ``calibration_queries``: content-free
    queries; ``low_mass_*``: replies below the estimator's ``min_mass`` (``low_mass_replies``),
    rows with one (``low_mass_rows``), rows left with no answer under ``LOW_MASS: drop``;
    ``from_other_runs``: queries another run sharing the cache was asking at the same time,
    whose answers this run took from the cache instead of paying for them again."""

    rows: int = 0
    unique_queries: int = 0
    deduplicated: int = 0
    cache_hits: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    invalid_rows: int = 0
    prompts_per_row: float = 0.0
    calibration_queries: int = 0
    low_mass_replies: int = 0
    low_mass_rows: int = 0
    low_mass_dropped_rows: int = 0
    low_mass_policy: str = "weight"
    from_other_runs: int = 0
    seconds: float = 0.0
    backend: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


derived_seed = derive_seed  # former name, kept for callers


def _persona_texts(pair_cols: list[str], personas: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    keys = [k for k in PERSONA_KEYS if k in pair_cols and k in personas.columns]
    if "persona_id" not in keys:
        raise ValueError("pairs and personas must both have a `persona_id` column")
    for name, cols, needed in (("pairs", pair_cols, {"persona_id", "item"}), ("personas", personas.columns, {"persona_id", "text"})):
        missing = needed - set(cols)
        if missing:
            raise ValueError(f"{name} table lacks columns {sorted(missing)}")
    # a persona text can appear in several leakage variants of the plan: one text per id suffices
    texts = personas[keys + ["text"]].drop_duplicates()
    if texts.duplicated(keys).any():
        dup = texts[texts.duplicated(keys, keep=False)].head(3).to_dict("records")
        raise ValueError(f"personas has several rows per {keys}, e.g. {dup}")
    return keys, texts


def _join(pairs: pd.DataFrame, keys: list[str], texts: pd.DataFrame) -> pd.DataFrame:
    joined = pairs.reset_index(drop=True).drop(columns=["text"], errors="ignore").merge(
        texts, on=keys, how="left", validate="many_to_one", sort=False)
    orphans = joined["text"].isna()
    if orphans.any():
        raise ValueError(f"{int(orphans.sum())} pairs have no persona text, e.g. "
                         f"{joined.loc[orphans, keys + ['item']].head(3).to_dict('records')}")
    return joined


def _chunks(pairs, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """``pairs`` in tables of ``chunk_rows`` rows (the last one shorter), whether it is one table
    or an iterable of tables of any sizes: the harness works (and commits) in its own chunk size."""
    if isinstance(pairs, pd.DataFrame):
        for start in range(0, max(len(pairs), 1), chunk_rows):
            yield pairs.iloc[start:start + chunk_rows]
        return
    held: list[pd.DataFrame] = []
    n_held = 0
    for part in pairs:
        held.append(part)
        n_held += len(part)
        while n_held >= chunk_rows:
            whole = held[0] if len(held) == 1 else pd.concat(held, ignore_index=True)
            yield whole.iloc[:chunk_rows]
            rest = whole.iloc[chunk_rows:]
            held, n_held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield held[0] if len(held) == 1 else pd.concat(held, ignore_index=True)


def iter_plans(pairs: pd.DataFrame | Iterable[pd.DataFrame], personas: pd.DataFrame, *, catalog: Catalog,
               backend_identity: dict, estimator: str = "logprobs", order: str = "fixed", replicates: int = 1,
               seed: int = 0, low_mass: str = "weight", chunk_rows: int = CHUNK_ROWS,
               **estimator_params) -> Iterator[GridPlan]:
    """:func:`plan_requests` chunk by chunk (``pairs``: a table, or an iterable of persona-major
    chunks of one); requests are deduplicated within a chunk."""
    if int(replicates) < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    est = make_estimator(estimator, **estimator_params)
    answer_weight(Answer(np.zeros(1), 0.0, 0, 1), 0.0, low_mass)  # names a bad LOW_MASS before any work
    texts = None
    planner = ChunkPlanner(catalog, est, estimator, backend_identity, int(replicates), seed)
    for chunk in _chunks(pairs, int(chunk_rows)):
        pair_cols = list(chunk.columns)
        if texts is None:
            keys, texts = _persona_texts(pair_cols, personas)
        joined = _join(chunk, keys, texts)
        catalog.check(joined["item"].unique())
        yield planner.plan(joined, pair_cols, order, low_mass)


def plan_requests(pairs: pd.DataFrame, personas: pd.DataFrame, *, catalog: Catalog, backend_identity: dict,
                  estimator: str = "logprobs", order: str = "fixed", replicates: int = 1, seed: int = 0,
                  low_mass: str = "weight", **estimator_params) -> GridPlan:
    """Render every pair (x replicate x ordering) and name its query by cache key, without asking.

    ``order``: which option orders each question is shown in (``fixed``, ``reversed``, ``pair``,
    ``cyclic``, ``random``; :mod:`vpersona.llm.orderings`); a row's answer is the mean over its
    orderings, in catalog order. Sampling estimators get a query seed derived from ``seed`` and
    the replicate index. ``low_mass``: ``weight`` | ``drop``, what a reply below ``min_mass``
    counts for (:func:`vpersona.llm.estimators.answer_weight`). ``estimator_params`` configure
    the estimator (e.g. ``top_logprobs=20``, ``min_mass=0.05``, ``contextual=True``, ``n=20``).
    """
    (plan,) = iter_plans(pairs, personas, catalog=catalog, backend_identity=backend_identity, estimator=estimator,
                         order=order, replicates=replicates, seed=seed, low_mass=low_mass,
                         chunk_rows=max(len(pairs), 1), **estimator_params)
    return plan


def _parse_all(plan: GridPlan, replies: dict[str, Reply], parsed: dict[str, Answer] | None = None) -> list[Answer]:
    """Each request's answer; with contextual calibration each row's orderings are parsed with
    the label prior of its content-free requests (the mean over the content-free inputs; a
    prior is a property of the row's persona kind and K, so every request of a row shares it). ``parsed``: answers already parsed without a
    prior (as they were stored in the cache), reused for requests that take none."""
    parsed = parsed or {}
    priors: dict[int, tuple[np.ndarray, bool]] = {}
    for g in set(plan.row_prior.tolist()) - {-1}:
        # presented = catalog order in a content-free prompt; NaN if no label mass
        got = [plan.estimator.parse(replies[plan.requests[j].key], plan.requests[j].prompt) for j in plan.priors[g]]
        priors[g] = (combine_priors([a.dist for a in got]), any("low_mass" in a.flags for a in got))
    prior_of = {i: p for ids, p in zip(plan.row_requests, plan.row_prior.tolist()) if p >= 0 for i in ids}
    return [plan.estimator.parse(replies[r.key], r.prompt, *priors[prior_of[j]]) if j in prior_of
            else parsed[r.key] if r.key in parsed else plan.estimator.parse(replies[r.key], r.prompt)
            for j, r in enumerate(plan.requests)]


def answers_table(plan: GridPlan, replies: dict[str, Reply], parsed: dict[str, Answer] | None = None) -> pd.DataFrame:
    """The tidy result: plan rows + K, p1..p10 (catalog order: the plain mean over the row's kept
    orderings, so pair/cyclic stay balanced), covered_mass (mean over orderings), n_valid,
    n_invalid, answer_weight (mean weight of the row's orderings in the aggregate: 1 unless some
    fell below ``min_mass``), flags
    (';'-joined union), prompt_hash (template set) and rendered_hash (the messages sent; one
    hash per ordering, ';'-joined)."""
    answers = _parse_all(plan, replies, parsed)
    min_mass = getattr(plan.estimator, "min_mass", 0.0)
    if all(len(ids) == 1 for ids in plan.row_requests):
        return _one_ordering_table(plan, answers, min_mass)
    return _general_table(plan, answers, min_mass)


def _general_table(plan: GridPlan, answers: list[Answer], min_mass: float) -> pd.DataFrame:
    n = len(plan.rows)
    P = np.zeros((n, KMAX))
    K = np.zeros(n, dtype=int)
    extra = {"covered_mass": np.zeros(n), "n_valid": np.zeros(n, dtype=int), "n_invalid": np.zeros(n, dtype=int),
             "answer_weight": np.zeros(n)}
    flags, prompt_hash, rendered_hash = [], [], []
    for i, ids in enumerate(plan.row_requests):
        got = [answers[j] for j in ids]
        prompt = plan.requests[ids[0]].prompt
        w = np.array([answer_weight(a, min_mass, plan.low_mass) for a in got])
        K[i] = prompt.K
        kept = [(wk, a) for wk, a in zip(w, got) if wk > 0]
        # the kept orderings count equally: weighting them by their mass would unbalance the label
        # positions pair/cyclic balance; the row's low mass goes into answer_weight instead
        P[i, :prompt.K] = (sum(a.dist for _, a in kept) / len(kept)) if kept else np.nan
        row_flags = set().union(*(a.flags for a in got))
        dropped = sum(1 for wk, a in zip(w, got) if a.ok and wk == 0)
        if dropped:
            row_flags.add("low_mass_dropped")
        extra["covered_mass"][i] = np.mean([a.covered_mass for a in got])
        extra["n_valid"][i] = sum(a.n_valid for wk, a in kept)
        extra["n_invalid"][i] = sum(a.n_invalid for a in got) + dropped
        extra["answer_weight"][i] = w.mean()
        flags.append(";".join(sorted(row_flags)))
        prompt_hash.append(prompt.template_hash)
        rendered_hash.append(";".join(plan.requests[j].prompt.rendered_hash for j in ids))
    out = from_matrix(plan.rows, P, K)
    for c, v in extra.items():
        out[c] = v
    out["flags"] = flags
    out["prompt_hash"] = prompt_hash
    out["rendered_hash"] = rendered_hash
    low = [sum(1 for j in ids if "low_mass" in answers[j].flags) for ids in plan.row_requests]
    out.attrs["low_mass"] = {"low_mass_replies": int(sum(low)), "low_mass_rows": int(sum(x > 0 for x in low)),
                             "low_mass_dropped_rows": int(sum("low_mass_dropped" in f for f in flags)),
                             "low_mass_policy": plan.low_mass}
    return out



def _one_ordering_table(plan: GridPlan, answers: list[Answer], min_mass: float) -> pd.DataFrame:
    """:func:`answers_table` when every row has one ordering (fixed, reversed, random): the same
    arithmetic, per request and vectorised instead of per row (tested byte for byte)."""
    reqs = plan.requests
    w = np.array([answer_weight(a, min_mass, plan.low_mass) for a in answers], dtype=float)
    K = np.array([r.prompt.K for r in reqs], dtype=int)
    D = np.zeros((len(reqs), KMAX))
    for j, a in enumerate(answers):
        D[j, :K[j]] = a.dist
    kept = w > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        P = np.where(kept[:, None], (w[:, None] * D) / w[:, None], np.nan)
    P[np.arange(KMAX)[None, :] >= K[:, None]] = 0.0
    ok = np.array([a.ok for a in answers], dtype=bool)
    dropped = ok & ~kept
    flags = [";".join(sorted(a.flags | {"low_mass_dropped"} if d else a.flags)) for a, d in zip(answers, dropped)]
    idx = np.array([ids[0] for ids in plan.row_requests], dtype=np.int64)
    out = from_matrix(plan.rows, P[idx], K[idx])
    out["covered_mass"] = np.array([a.covered_mass for a in answers], dtype=float)[idx]
    out["n_valid"] = np.where(kept, [a.n_valid for a in answers], 0).astype(int)[idx]
    out["n_invalid"] = (np.array([a.n_invalid for a in answers], dtype=int) + dropped)[idx]
    out["answer_weight"] = w[idx]
    out["flags"] = np.array(flags, dtype=object)[idx]
    out["prompt_hash"] = np.array([r.prompt.template_hash for r in reqs], dtype=object)[idx]
    out["rendered_hash"] = np.array([r.prompt.rendered_hash for r in reqs], dtype=object)[idx]
    low = np.array(["low_mass" in a.flags for a in answers], dtype=bool)[idx]
    out.attrs["low_mass"] = {"low_mass_replies": int(low.sum()), "low_mass_rows": int(low.sum()),
                             "low_mass_dropped_rows": int(dropped[idx].sum()), "low_mass_policy": plan.low_mass}
    return out


async def _run(plans: Iterator[GridPlan], backend: Backend, cache: AnswerCache, concurrency: int,
               stats: RunStats, sink, bar, totals: dict) -> None:
    committer = None
    try:
        for plan in plans:  # planned while the previous chunk's replies are written (a thread)
            committer = committer or Committer(cache, backend, plan.estimator)
            n_row_queries = sum(len(ids) for ids in plan.row_requests)
            priors = {j for g in set(plan.row_prior.tolist()) - {-1} for j in plan.priors[g]}
            stats.rows += len(plan.rows)
            stats.unique_queries += len(plan.requests)
            stats.deduplicated += n_row_queries - (len(plan.requests) - len(priors))
            totals["row_queries"] += n_row_queries
            totals["priors"].update(plan.requests[j].key for j in priors)
            committer.wait()  # earlier chunks' replies are in the cache before this chunk looks up
            replies = cache.get_many([r.key for r in plan.requests])
            stats.cache_hits += len(replies)
            todo = [r for r in plan.requests if r.key not in replies]
            if todo and cache.readonly:
                raise CacheError(f"the answer cache {cache.path} is read-only here and lacks {len(todo)} of the "
                                 f"{len(plan.requests)} queries: nothing was asked; make it writable or choose "
                                 "another CACHE_PATH")
            parsed: dict[str, Answer] = {}
            bar.total = (bar.total or 0) + len(todo)  # the bar counts the queries asked (cached ones are free)
            bar.refresh()
            while todo:  # keys another run is asking are left to it and read from the cache when there
                theirs = cache.claim(r.key for r in todo)
                mine = [r for r in todo if r.key not in theirs]
                await ask_all(mine, backend, committer, plan.estimator, concurrency, replies, parsed, stats,
                              on_reply=bar.update)
                todo = [r for r in todo if r.key in theirs]
                if todo:
                    todo = await _take_from_others(todo, cache, committer, replies, stats, bar)
            table = answers_table(plan, replies, parsed)
            stats.invalid_rows += int((table["n_valid"] == 0).sum())
            for k, v in table.attrs.pop("low_mass").items():
                setattr(stats, k, v if isinstance(v, str) else getattr(stats, k) + v)
            sink(table)
            committer.release_claims()  # after this chunk's answers are committed: the claims did their work
    finally:
        if committer is not None:
            committer.close()  # every reply received is committed, also when a query failed
        try:
            cache.release()
        except CacheError:  # the cache cannot be written (the error that stopped the run says so)
            pass


async def _take_from_others(waiting: list, cache: AnswerCache, committer: Committer, replies: dict, stats: RunStats,
                            bar) -> list:
    """Wait for the answers another run claimed; return the queries whose claim lapsed (that run
    died or gave up) so this run asks them itself."""
    committer.wait()
    last_beat = time.monotonic()
    while waiting:
        got = cache.get_many(r.key for r in waiting)
        if got:
            replies.update(got)
            stats.from_other_runs += len(got)
            bar.update(len(got))
            waiting = [r for r in waiting if r.key not in got]
            continue
        if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
            cache.heartbeat()
            last_beat = time.monotonic()
        theirs = cache.claim(r.key for r in waiting)
        lapsed = [r for r in waiting if r.key not in theirs]
        if lapsed:
            return lapsed
        await asyncio.sleep(0.2)
    return []


def _grid(pairs, personas, sink, *, catalog, backend, cache, estimator, order, replicates, seed, concurrency,
          progress, chunk_rows, low_mass, estimator_params) -> dict:
    t0 = time.perf_counter()
    identity = backend.identity()
    stats = RunStats(backend=identity)
    plans = iter_plans(pairs, personas, catalog=catalog, backend_identity=identity, estimator=estimator, order=order,
                       replicates=replicates, seed=seed, low_mass=low_mass, chunk_rows=chunk_rows, **estimator_params)
    totals = {"row_queries": 0, "priors": set()}
    with ExitStack() as stack:
        stack.enter_context(fewer_collections())
        if cache is None:  # repeats across chunks still cost one call: a scratch cache, deleted after
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="vpersona-grid-"))
            cache = stack.enter_context(AnswerCache(Path(tmp) / "scratch.sqlite", shared=False))
        # a terminal gets a live bar, a log a line every 30 s (vpersona.core.progress)
        bar = stack.enter_context(progress_bar(0, f"querying {backend.kind}", unit="q", disable=not progress))
        run_coroutine(_run(plans, backend, cache, concurrency, stats, sink, bar, totals))
    if stats.from_other_runs:
        print(f"[vpersona] {stats.from_other_runs} answers taken from another run that was asking them at the same "
              f"time (cache {cache.path}): not paid twice", file=sys.stderr)
    stats.prompts_per_row = totals["row_queries"] / max(1, stats.rows)
    stats.calibration_queries = len(totals["priors"])
    stats.seconds = time.perf_counter() - t0
    return stats.as_dict()


def run_grid(pairs: pd.DataFrame, personas: pd.DataFrame, *, catalog: Catalog, backend: Backend,
             cache: AnswerCache | None, estimator: str = "logprobs", order: str = "fixed", replicates: int = 1,
             seed: int = 0, concurrency: int = 8, progress: bool = True, low_mass: str = "weight",
             chunk_rows: int = CHUNK_ROWS, **estimator_params) -> pd.DataFrame:
    """Ask each persona its questions; one row per pair (x replicate). Run statistics are in
    ``table.attrs["run_stats"]`` (a :class:`RunStats` dict). ``cache=None`` keeps nothing.
    For a large grid use :func:`stream_grid`, which holds no table in memory."""
    parts: list[pd.DataFrame] = []
    stats = _grid(pairs, personas, parts.append, catalog=catalog, backend=backend, cache=cache, estimator=estimator,
                  order=order, replicates=replicates, seed=seed, concurrency=concurrency, progress=progress,
                  chunk_rows=chunk_rows, low_mass=low_mass, estimator_params=estimator_params)
    table = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    table.attrs["run_stats"] = stats
    return table


def stream_grid(pairs: pd.DataFrame | Iterable[pd.DataFrame], personas: pd.DataFrame, path: str | Path, *,
                catalog: Catalog, backend: Backend, cache: AnswerCache | None, estimator: str = "logprobs",
                order: str = "fixed", replicates: int = 1, seed: int = 0, concurrency: int = 8,
                progress: bool = True, low_mass: str = "weight", chunk_rows: int = CHUNK_ROWS,
                **estimator_params) -> dict:
    """:func:`run_grid` that writes the answers table to ``path`` chunk by chunk (``.csv``, or
    gzip-compressed ``.csv.gz``, reproducible bytes) and returns the run statistics. The file
    holds exactly what ``run_grid(...).to_csv(path, index=False, float_format="%.10g")`` would;
    it is written to ``<path>.part`` and renamed when complete. ``pairs`` may be an iterable of
    persona-major chunks, so not even the plan need be in memory."""
    with AnswersWriter(path) as writer:
        return _grid(pairs, personas, writer.write, catalog=catalog, backend=backend, cache=cache, estimator=estimator,
                     order=order, replicates=replicates, seed=seed, concurrency=concurrency, progress=progress,
                     chunk_rows=chunk_rows, low_mass=low_mass, estimator_params=estimator_params)
