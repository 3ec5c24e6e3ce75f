"""Ask every persona its questions: the grid runner (docs/method.md, section 2).

``run_grid`` takes the persona plan (``personas``: persona_id, country, kind, text, multiplicity,
...; ``pairs``: persona_id, country, kind, item, multiplicity, one row per persona x question, in
persona-major order) and returns one row per pair (x replicate) with the answer distribution in
catalog option order (``p1..p10``, see ``vpersona.core.distributions``), ``covered_mass``, counts and
flags.

How it spends calls: each pair becomes one prompt per option ordering (``order``, see
:mod:`vpersona.llm.orderings`: 1 for fixed/reversed/random, 2 for pair, K for cyclic; the row's
answer is their mean in catalog order) plus, with contextual calibration, one content-free
prompt per persona kind and K (:mod:`vpersona.llm.contextual`); identical queries (same messages,
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
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from vpersona.core.progress import progress_bar
from vpersona.llm.backends.base import Backend, Query, Reply, cache_key
from vpersona.llm.cache import AnswerCache
from vpersona.data.catalog import Catalog
from vpersona.core.distributions import KMAX, from_matrix
from vpersona.core.seeds import derive_seed
from vpersona.llm.contextual import content_free_prompt
from vpersona.llm.estimators import Answer, Estimator, answer_weight, make_estimator
from vpersona.llm.orderings import orderings
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
    x replicate (pair columns + ``replicate``); ``row_requests[i]``: indices into ``requests`` of
    the row's orderings (one per permutation, see :mod:`vpersona.llm.orderings`);
    ``row_prior[i]``: index of the row's content-free request (contextual calibration), or -1."""

    requests: list[Request]
    rows: pd.DataFrame
    row_requests: list[tuple[int, ...]]
    row_prior: np.ndarray
    estimator: Estimator
    low_mass: str = "weight"


@dataclass
class RunStats:
    """What a grid run cost. ``calls``: queries sent to the backend; ``cache_hits``: distinct
    queries answered from the cache; ``deduplicated``: row orderings that shared a query with
    another; ``prompts_per_row``: orderings per row; ``calibration_queries``: content-free
    queries; ``low_mass_*``: replies below the estimator's ``min_mass`` (``low_mass_replies``),
    rows with one (``low_mass_rows``), rows left with no answer under ``LOW_MASS: drop``."""

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
    seconds: float = 0.0
    backend: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


derived_seed = derive_seed  # former name, kept for callers


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
                  low_mass: str = "weight", **estimator_params) -> GridPlan:
    """Render every pair (x replicate x ordering) and name its query by cache key, without asking.

    ``order``: which option orders each question is shown in (``fixed``, ``reversed``, ``pair``,
    ``cyclic``, ``random``; :mod:`vpersona.llm.orderings`); a row's answer is the mean over its
    orderings, in catalog order. Sampling estimators get a query seed derived from ``seed`` and
    the replicate index. ``low_mass``: ``weight`` | ``drop``, what a reply below ``min_mass``
    counts for (:func:`vpersona.llm.estimators.answer_weight`). ``estimator_params`` configure
    the estimator (e.g. ``top_logprobs=20``, ``min_mass=0.05``, ``contextual=True``, ``n=20``).
    """
    if int(replicates) < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    est = make_estimator(estimator, **estimator_params)
    answer_weight(Answer(np.zeros(1), 0.0, 0, 1), 0.0, low_mass)  # names a bad LOW_MASS before any work
    contextual = bool(getattr(est, "contextual", False))
    joined = _join_personas(pairs, personas)
    catalog.check(joined["item"].unique())
    requests: list[Request] = []
    index_of: dict[str, int] = {}
    prompts: dict[tuple, Prompt] = {}
    pair_cols = list(pairs.columns)
    rows, row_requests, row_prior = [], [], []

    def request(prompt: Prompt, r: int) -> int:
        params = {"seed": derive_seed(seed, "replicate", r)} if est.uses_seed else {}
        query = est.make_query(prompt, **params)
        key = cache_key(backend_identity, query, estimator, r)
        j = index_of.get(key)
        if j is None:
            j = index_of[key] = len(requests)
            requests.append(Request(key=key, query=query, prompt=prompt, replicate=r))
        return j

    for rec in joined.to_dict("records"):
        text, item = rec["text"], catalog[rec["item"]]
        for r in range(replicates):
            perms = orderings(item.n_options, order, seed=seed, country=rec.get("country"),
                              persona=rec["persona_id"], item=item.code, replicate=r)
            ids = []
            for perm in perms:
                pkey = (text, item.code, perm)
                prompt = prompts.get(pkey)
                if prompt is None:
                    prompt = prompts[pkey] = render(text, item, estimator=estimator, option_index=perm)
                ids.append(request(prompt, r))
            row_requests.append(tuple(ids))
            row_prior.append((bool(text.strip()), item.n_options) if contextual else None)
            rows.append({**{c: rec[c] for c in pair_cols}, "replicate": r})
    # content-free prompts last, so they do not interrupt a persona's run of shared-prefix prompts
    prior_index = {key: request(content_free_prompt("x" if key[0] else "", key[1], estimator=estimator), 0)
                   for key in dict.fromkeys(k for k in row_prior if k is not None)}
    row_prior = [-1 if k is None else prior_index[k] for k in row_prior]
    return GridPlan(requests=requests, rows=pd.DataFrame(rows, columns=pair_cols + ["replicate"]),
                    row_requests=row_requests, row_prior=np.array(row_prior, dtype=np.int64), estimator=est,
                    low_mass=low_mass)


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


def _parse_all(plan: GridPlan, replies: dict[str, Reply]) -> list[Answer]:
    """Each request's answer; with contextual calibration each row's orderings are parsed with
    the label prior of its content-free request (a prior is a property of the row's persona kind
    and K, so every request of a row shares it)."""
    priors: dict[int, np.ndarray] = {}
    for j in set(plan.row_prior.tolist()) - {-1}:
        req = plan.requests[j]
        a = plan.estimator.parse(replies[req.key], req.prompt)
        priors[j] = a.dist  # presented = catalog order in a content-free prompt; NaN if no label mass
    prior_of = {i: p for ids, p in zip(plan.row_requests, plan.row_prior.tolist()) if p >= 0 for i in ids}
    return [plan.estimator.parse(replies[r.key], r.prompt, priors[prior_of[j]]) if j in prior_of
            else plan.estimator.parse(replies[r.key], r.prompt) for j, r in enumerate(plan.requests)]


def answers_table(plan: GridPlan, replies: dict[str, Reply]) -> pd.DataFrame:
    """The tidy result: plan rows + K, p1..p10 (catalog order: the weighted mean over the row's
    orderings), covered_mass (mean over orderings), n_valid, n_invalid, answer_weight (mean
    weight of the row's orderings in the aggregate: 1 unless some fell below ``min_mass``), flags
    (';'-joined union), prompt_hash (template set) and rendered_hash (the messages sent; one
    hash per ordering, ';'-joined)."""
    answers = _parse_all(plan, replies)
    min_mass = getattr(plan.estimator, "min_mass", 0.0)
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
        P[i, :prompt.K] = (sum(wk * a.dist for wk, a in kept) / w.sum()) if kept else np.nan
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


def run_grid(pairs: pd.DataFrame, personas: pd.DataFrame, *, catalog: Catalog, backend: Backend,
             cache: AnswerCache | None, estimator: str = "logprobs", order: str = "fixed", replicates: int = 1,
             seed: int = 0, concurrency: int = 8, progress: bool = True, low_mass: str = "weight",
             **estimator_params) -> pd.DataFrame:
    """Ask each persona its questions; one row per pair (x replicate). Run statistics are in
    ``table.attrs["run_stats"]`` (a :class:`RunStats` dict). ``cache=None`` keeps nothing."""
    t0 = time.perf_counter()
    identity = backend.identity()
    plan = plan_requests(pairs, personas, catalog=catalog, backend_identity=identity, estimator=estimator,
                         order=order, replicates=replicates, seed=seed, low_mass=low_mass, **estimator_params)
    n_row_queries = sum(len(ids) for ids in plan.row_requests)
    stats = RunStats(rows=len(plan.rows), unique_queries=len(plan.requests),
                     deduplicated=n_row_queries - (len(plan.requests) - len(set(plan.row_prior.tolist()) - {-1})),
                     prompts_per_row=n_row_queries / max(1, len(plan.rows)),
                     calibration_queries=len(set(plan.row_prior.tolist()) - {-1}), backend=identity)
    replies: dict[str, Reply] = cache.get_many([r.key for r in plan.requests]) if cache is not None else {}
    stats.cache_hits = len(replies)
    todo = [r for r in plan.requests if r.key not in replies]
    _run_coroutine(_ask_all(todo, backend, cache, plan.estimator, concurrency, progress, replies, stats))
    table = answers_table(plan, replies)
    stats.invalid_rows = int((table["n_valid"] == 0).sum())
    for k, v in table.attrs.pop("low_mass").items():
        setattr(stats, k, v)
    stats.seconds = time.perf_counter() - t0
    table.attrs["run_stats"] = stats.as_dict()
    return table
