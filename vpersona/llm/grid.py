"""Ask every persona its questions: the grid runner (METHOD.md §2.6, §7).

``run_grid`` takes the persona plan (``personas``: persona_id, country, kind, text, multiplicity,
...; ``pairs``: persona_id, country, kind, item, multiplicity, one row per persona x question, in
persona-major order) and returns one row per pair (x replicate) with the answer distribution in
catalog option order (``p1..p10``, see ``vpersona.core.distributions``), ``covered_mass``, counts and
flags.

How it spends calls: each pair becomes a prompt and a query; identical queries (same messages,
parameters and replicate, e.g. the `none` persona in every country) share one cache key and one
call; keys already in the cache cost nothing; the rest go to the backend in persona-major order
with at most ``concurrency`` in flight, each reply committed to the cache as it arrives. The table
is computed from the replies alone, so the same inputs and cache give an identical table.

``plan_requests`` exposes the first half (what would be asked, under which keys) for other paths,
e.g. writing a Batch JSONL file and loading its results into the cache.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from vpersona.core.progress import progress_bar
from vpersona.llm.backends.base import Backend, Query, Reply, cache_key
from vpersona.llm.cache import AnswerCache
from vpersona.data.catalog import Catalog
from vpersona.core.distributions import KMAX, from_matrix
from vpersona.llm.estimators import Answer, Estimator, make_estimator
from vpersona.llm.prompts import Prompt, render

PERSONA_KEYS = ("persona_id", "country", "kind")


@dataclass(frozen=True)
class Request:
    """One distinct query of the grid: its cache key, the query and the prompt it came from."""

    key: str
    query: Query
    prompt: Prompt
    replicate: int


@dataclass
class GridPlan:
    """``requests``: distinct queries in first-use (persona-major) order. ``rows``: one row per pair
    x replicate (pair columns + ``replicate``), and ``row_request[i]`` = index into ``requests``."""

    requests: list[Request]
    rows: pd.DataFrame
    row_request: np.ndarray
    estimator: Estimator


@dataclass
class RunStats:
    """What a grid run cost. ``calls``: queries sent to the backend; ``cache_hits``: distinct
    queries answered from the cache; ``deduplicated``: rows that shared a query with another row."""

    rows: int = 0
    unique_queries: int = 0
    deduplicated: int = 0
    cache_hits: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    invalid_rows: int = 0
    seconds: float = 0.0
    backend: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def derived_seed(*parts) -> int:
    """A 31-bit seed from any parts (run seed, persona id, replicate...), stable across runs."""
    blob = ":".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") >> 1


def _join_personas(pairs: pd.DataFrame, personas: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in PERSONA_KEYS if k in pairs.columns and k in personas.columns]
    if "persona_id" not in keys:
        raise ValueError("pairs and personas must both have a `persona_id` column")
    for name, table, needed in (("pairs", pairs, {"persona_id", "item"}), ("personas", personas, {"persona_id", "text"})):
        missing = needed - set(table.columns)
        if missing:
            raise ValueError(f"{name} table lacks columns {sorted(missing)}")
    # a persona text can appear in several leakage variants of the plan: one text per id suffices
    texts = personas[keys + ["text"]].drop_duplicates()
    if texts.duplicated(keys).any():
        dup = texts[texts.duplicated(keys, keep=False)].head(3).to_dict("records")
        raise ValueError(f"personas has several rows per {keys}, e.g. {dup}")
    joined = pairs.reset_index(drop=True).drop(columns=["text"], errors="ignore").merge(texts, on=keys, how="left", validate="many_to_one", sort=False)
    orphans = joined["text"].isna()
    if orphans.any():
        raise ValueError(f"{int(orphans.sum())} pairs have no persona text, e.g. "
                         f"{joined.loc[orphans, keys + ['item']].head(3).to_dict('records')}")
    return joined


def plan_requests(pairs: pd.DataFrame, personas: pd.DataFrame, *, catalog: Catalog, backend_identity: dict,
                  estimator: str = "logprobs", order: str = "fixed", replicates: int = 1, seed: int = 0,
                  **estimator_params) -> GridPlan:
    """Render every pair (x replicate) and name its query by cache key, without asking anything.

    ``order``: option order per persona (``fixed``, ``reversed``, ``random`` = a permutation
    seeded by ``seed`` and the persona id). Sampling estimators get a query seed derived from
    ``seed`` and the replicate index. ``estimator_params`` configure the estimator
    (e.g. ``top_logprobs=20``, ``min_mass=0.5``, ``n=20``, ``temperature=1.0``).
    """
    if int(replicates) < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    est = make_estimator(estimator, **estimator_params)
    joined = _join_personas(pairs, personas)
    catalog.check(joined["item"].unique())
    requests: list[Request] = []
    index_of: dict[str, int] = {}
    row_request = np.empty(len(joined) * replicates, dtype=np.int64)
    prompts: dict[tuple, Prompt] = {}
    pair_cols = list(pairs.columns)
    rows = []
    i = 0
    for rec in joined.to_dict("records"):
        text, item = rec["text"], rec["item"]
        order_seed = derived_seed(seed, rec["persona_id"]) if order == "random" else None
        pkey = (text, item, order_seed)
        prompt = prompts.get(pkey)
        if prompt is None:
            prompt = prompts[pkey] = render(text, catalog[item], estimator=estimator, order=order, order_seed=order_seed)
        for r in range(replicates):
            params = {"seed": derived_seed(seed, "replicate", r)} if est.uses_seed else {}
            query = est.make_query(prompt, **params)
            key = cache_key(backend_identity, query, estimator, r)
            j = index_of.get(key)
            if j is None:
                j = index_of[key] = len(requests)
                requests.append(Request(key=key, query=query, prompt=prompt, replicate=r))
            row_request[i] = j
            rows.append({**{c: rec[c] for c in pair_cols}, "replicate": r})
            i += 1
    return GridPlan(requests=requests, rows=pd.DataFrame(rows, columns=pair_cols + ["replicate"]),
                    row_request=row_request, estimator=est)


async def _ask_all(todo: list[Request], backend: Backend, cache: AnswerCache | None, est: Estimator,
                   concurrency: int, progress: bool, replies: dict[str, Reply], stats: RunStats) -> None:
    """Send ``todo`` in order with at most ``concurrency`` in flight; store each reply at once.
    On a failure no new query starts, the ones in flight finish (and are cached), then it raises."""
    queue = iter(todo)
    failures: list[BaseException] = []
    identity = backend.identity()
    bar = progress_bar(len(todo), f"querying {backend.kind}", unit="q", disable=not progress or not todo)

    async def worker():
        for req in queue:  # the shared iterator hands out queries in order
            if failures:
                return
            try:
                reply = await backend.acomplete(req.query)
            except BaseException as e:  # noqa: BLE001 - re-raised below after the others stop
                failures.append(e)
                return
            replies[req.key] = reply
            stats.calls += 1
            stats.prompt_tokens += int(reply.usage.get("prompt_tokens", 0))
            stats.completion_tokens += int(reply.usage.get("completion_tokens", 0))
            if cache is not None:
                cache.put(req.key, reply, backend=backend.kind, estimator=est.name, model=identity.get("model"),
                          answer=est.parse(reply, req.prompt).to_json())
            bar.update(1)

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, int(concurrency)))))
    finally:
        bar.close()
    if failures:
        raise failures[0]


def _run_coroutine(coro):
    """``asyncio.run`` that also works where a loop is already running (Jupyter, papermill)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def answers_table(plan: GridPlan, replies: dict[str, Reply]) -> pd.DataFrame:
    """The tidy result: plan rows + K, p1..p10 (catalog order), covered_mass, n_valid, n_invalid,
    flags (';'-joined), prompt_hash (template set) and rendered_hash (the messages sent)."""
    answers: list[Answer] = [plan.estimator.parse(replies[r.key], r.prompt) for r in plan.requests]
    n = len(plan.rows)
    P = np.zeros((n, KMAX))
    K = np.zeros(n, dtype=int)
    extra = {"covered_mass": np.zeros(n), "n_valid": np.zeros(n, dtype=int), "n_invalid": np.zeros(n, dtype=int)}
    flags, prompt_hash, rendered_hash = [], [], []
    for i, j in enumerate(plan.row_request):
        a, prompt = answers[j], plan.requests[j].prompt
        K[i] = prompt.K
        P[i, :prompt.K] = a.dist
        extra["covered_mass"][i], extra["n_valid"][i], extra["n_invalid"][i] = a.covered_mass, a.n_valid, a.n_invalid
        flags.append(";".join(sorted(a.flags)))
        prompt_hash.append(prompt.template_hash)
        rendered_hash.append(prompt.rendered_hash)
    out = from_matrix(plan.rows, P, K)
    for c, v in extra.items():
        out[c] = v
    out["flags"] = flags
    out["prompt_hash"] = prompt_hash
    out["rendered_hash"] = rendered_hash
    return out


def run_grid(pairs: pd.DataFrame, personas: pd.DataFrame, *, catalog: Catalog, backend: Backend,
             cache: AnswerCache | None, estimator: str = "logprobs", order: str = "fixed", replicates: int = 1,
             seed: int = 0, concurrency: int = 8, progress: bool = True, **estimator_params) -> pd.DataFrame:
    """Ask each persona its questions; one row per pair (x replicate). Run statistics are in
    ``table.attrs["run_stats"]`` (a :class:`RunStats` dict). ``cache=None`` keeps nothing."""
    t0 = time.perf_counter()
    identity = backend.identity()
    plan = plan_requests(pairs, personas, catalog=catalog, backend_identity=identity, estimator=estimator,
                         order=order, replicates=replicates, seed=seed, **estimator_params)
    stats = RunStats(rows=len(plan.rows), unique_queries=len(plan.requests),
                     deduplicated=len(plan.rows) - len(plan.requests), backend=identity)
    replies: dict[str, Reply] = cache.get_many([r.key for r in plan.requests]) if cache is not None else {}
    stats.cache_hits = len(replies)
    todo = [r for r in plan.requests if r.key not in replies]
    _run_coroutine(_ask_all(todo, backend, cache, plan.estimator, concurrency, progress, replies, stats))
    table = answers_table(plan, replies)
    stats.invalid_rows = int((table["n_valid"] == 0).sum())
    stats.seconds = time.perf_counter() - t0
    table.attrs["run_stats"] = stats.as_dict()
    return table
