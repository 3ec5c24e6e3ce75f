"""Ask every persona its questions: the grid runner (METHOD.md §2.6, §7).

``run_grid`` takes the persona plan (``personas``: persona_id, country, kind, text, multiplicity,
...; ``pairs``: persona_id, country, kind, item, multiplicity, one row per persona x question, in
persona-major order) and returns one row per pair (x replicate) with the answer distribution in
catalog option order (``p1..p10``, see ``vpersona.core.distributions``), ``covered_mass``, counts and
flags. ``stream_grid`` does the same but writes the table to a CSV(.gz) file as it goes and keeps
nothing in memory; ``read_answers`` reads such a file back.

How it spends calls: the pairs are taken in chunks of ``chunk_rows`` rows, in their (persona-major)
order, and each chunk is planned, looked up, asked and written before the next one starts, so
memory does not grow with the grid. In a chunk each pair becomes a prompt and a query; identical
queries (same messages, parameters and replicate) share one cache key and one call; keys already in
the cache cost nothing (a query repeated in a later chunk, e.g. the `none` persona of the next
country, is by then in the cache: a cache hit, not a call); the rest go to the backend with at most
``concurrency`` in flight, replies committed to the cache in small groups (at most
``FLUSH_SECONDS`` after they arrive). The table is computed from the replies alone, so the same
inputs and cache give an identical table, whatever the chunk size.

``plan_requests`` exposes the first half for a whole grid (what would be asked, under which keys)
for other paths, e.g. writing a Batch JSONL file and loading its results into the cache.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
import warnings
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from vpersona.llm.answers_file import AnswersWriter, read_answers  # noqa: F401 - read_answers is public here
from vpersona.llm.backends.base import Backend, Query, Reply, cache_key
from vpersona.llm.cache import AnswerCache
from vpersona.data.catalog import Catalog
from vpersona.core.distributions import KMAX, from_matrix
from vpersona.llm.estimators import Answer, Estimator, make_estimator
from vpersona.llm.prompts import Prompt, render
from vpersona.llm.querying import Committer, ask_all, run_coroutine

PERSONA_KEYS = ("persona_id", "country", "kind")
CHUNK_ROWS = 16_384      # pairs per chunk: memory is O(chunk), the pipeline drains once per chunk


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
    queries answered from the cache; ``deduplicated``: rows that shared a query with another row of
    their chunk (repeats across chunks are cache hits)."""

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


def _orderings(rec: dict, order: str, seed: int) -> dict:
    """How the options of this pair are presented: the ``order``/``order_seed`` arguments of
    :func:`render`. ``random``: a permutation seeded by the run seed and the persona id."""
    return {"order": order, "order_seed": derived_seed(seed, rec["persona_id"]) if order == "random" else None}


def _chunks(pairs, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if isinstance(pairs, pd.DataFrame):
        for start in range(0, max(len(pairs), 1), chunk_rows):
            yield pairs.iloc[start:start + chunk_rows]
    else:
        yield from pairs


def iter_plans(pairs: pd.DataFrame | Iterable[pd.DataFrame], personas: pd.DataFrame, *, catalog: Catalog,
               backend_identity: dict, estimator: str = "logprobs", order: str = "fixed", replicates: int = 1,
               seed: int = 0, chunk_rows: int = CHUNK_ROWS, **estimator_params) -> Iterator[GridPlan]:
    """:func:`plan_requests` chunk by chunk (``pairs``: a table, or an iterable of persona-major
    chunks of one); requests are deduplicated within a chunk."""
    if int(replicates) < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    est = make_estimator(estimator, **estimator_params)
    texts = None
    for chunk in _chunks(pairs, int(chunk_rows)):
        pair_cols = list(chunk.columns)
        if texts is None:
            keys, texts = _persona_texts(pair_cols, personas)
        joined = _join(chunk, keys, texts)
        catalog.check(joined["item"].unique())
        planner = _Planner(catalog, est, estimator, backend_identity, int(replicates), seed)  # memos per chunk
        yield planner.plan(joined, pair_cols, order)


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


class _Planner:
    """Prompts, queries and cache keys of one chunk, built from memoised parts.

    A prompt is the persona's system message (the same for all its questions) and the question's
    user message (the same for every persona shown the same option order); the JSON of the
    messages, which both the prompt's ``rendered_hash`` and the cache key hash, is the two parts'
    JSON joined. So :func:`render` runs once per persona and once per (question, order) instead
    of once per pair. The first row of each chunk is checked against the plain path (``render``,
    ``make_query``, ``base.cache_key``): any disagreement stops the run.
    """

    def __init__(self, catalog: Catalog, est: Estimator, estimator: str, identity: dict, replicates: int, seed: int):
        self.catalog, self.est, self.estimator, self.identity = catalog, est, estimator, identity
        self.replicates, self.seed = replicates, seed
        self.params = [{"seed": derived_seed(seed, "replicate", r)} if est.uses_seed else {} for r in range(replicates)]
        self.head = sha256(('{"backend":' + _dumps(identity) + ',"estimator":' + _dumps(estimator)
                            + ',"messages":').encode("utf-8"))  # copied, then fed the rest of the key's JSON
        self.questions: dict[tuple, tuple] = {}
        self.systems: dict[str, tuple | None] = {}

    def _question(self, item: str, how: dict) -> tuple:
        base = render("", self.catalog[item], estimator=self.estimator, **how)  # no persona: user message only
        (user,) = base.messages
        queries = [self.est.make_query(base, **p) for p in self.params]
        tails = [(',"params":' + _dumps(q.param_dict) + ',"replicate":' + str(r) + "}").encode("utf-8")
                 for r, q in enumerate(queries)]
        return base, _dumps(user).encode("utf-8"), queries, tails

    def _system(self, text: str, item: str, how: dict) -> tuple | None:
        full = render(text, self.catalog[item], estimator=self.estimator, **how)
        if len(full.messages) == 1:
            return None
        system = full.messages[0]
        return system, b"[" + _dumps(system).encode("utf-8") + b",", tuple(sorted(system.items()))

    def request(self, text: str, item: str, how: dict, r: int) -> tuple[Prompt, Query, str]:
        qkey = (item, *how.values())
        q = self.questions.get(qkey)
        if q is None:
            q = self.questions[qkey] = self._question(item, how)
        base, user_json, queries, tails = q
        s = self.systems.get(text, False)
        if s is False:
            s = self.systems[text] = self._system(text, item, how)
        if s is None:
            messages_json, prompt, query = b"[" + user_json + b"]", base, queries[r]
        else:
            system, system_json, system_items = s
            messages_json = system_json + user_json + b"]"
            prompt = Prompt(base.item, base.estimator, (system, base.messages[0]), base.labels, base.option_index,
                            base.template_hash, sha256(messages_json).hexdigest())
            query = Query((system_items,) + queries[r].messages, queries[r].params)
        key = self.head.copy()
        key.update(messages_json)
        key.update(tails[r])
        return prompt, query, key.hexdigest()

    def check(self, text: str, item: str, how: dict, r: int, got: tuple) -> None:
        prompt = render(text, self.catalog[item], estimator=self.estimator, **how)
        query = self.est.make_query(prompt, **self.params[r])
        if got != (prompt, query, cache_key(self.identity, query, self.estimator, r)):
            raise RuntimeError(f"internal error: the grid planner's prompt/key for item {item} differs from "
                               f"prompts.render + base.cache_key; please report it")

    def plan(self, joined: pd.DataFrame, pair_cols: list[str], order: str) -> GridPlan:
        requests: list[Request] = []
        index_of: dict[str, int] = {}
        R = self.replicates
        row_request = np.empty(len(joined) * R, dtype=np.int64)
        i = 0
        names = list(joined.columns)
        for values in zip(*(joined[c].tolist() for c in names)):
            rec = dict(zip(names, values))
            text, item = rec["text"], rec["item"]
            how = _orderings(rec, order, self.seed)
            for r in range(R):
                prompt, query, key = got = self.request(text, item, how, r)
                if i == 0:
                    self.check(text, item, how, r, got)
                j = index_of.get(key)
                if j is None:
                    j = index_of[key] = len(requests)
                    requests.append(Request(key=key, query=query, prompt=prompt, replicate=r))
                row_request[i] = j
                i += 1
        rows = joined[pair_cols]
        if R > 1:
            rows = rows.loc[rows.index.repeat(R)]
        rows = rows.reset_index(drop=True).assign(replicate=np.tile(np.arange(R), len(joined)))
        return GridPlan(requests=requests, rows=rows, row_request=row_request, estimator=self.est)


def plan_requests(pairs: pd.DataFrame, personas: pd.DataFrame, *, catalog: Catalog, backend_identity: dict,
                  estimator: str = "logprobs", order: str = "fixed", replicates: int = 1, seed: int = 0,
                  **estimator_params) -> GridPlan:
    """Render every pair (x replicate) and name its query by cache key, without asking anything.

    ``order``: option order per persona (``fixed``, ``reversed``, ``random`` = a permutation
    seeded by ``seed`` and the persona id). Sampling estimators get a query seed derived from
    ``seed`` and the replicate index. ``estimator_params`` configure the estimator
    (e.g. ``top_logprobs=20``, ``min_mass=0.5``, ``n=20``, ``temperature=1.0``).
    """
    (plan,) = iter_plans(pairs, personas, catalog=catalog, backend_identity=backend_identity, estimator=estimator,
                         order=order, replicates=replicates, seed=seed, chunk_rows=max(len(pairs), 1),
                         **estimator_params)
    return plan


def answers_table(plan: GridPlan, replies: dict[str, Reply | Answer]) -> pd.DataFrame:
    """The tidy result: plan rows + K, p1..p10 (catalog order), covered_mass, n_valid, n_invalid,
    flags (';'-joined), prompt_hash (template set) and rendered_hash (the messages sent).
    ``replies``: per request key, the Reply or its parsed Answer."""
    answers = [a if isinstance(a := replies[r.key], Answer) else plan.estimator.parse(a, r.prompt)
               for r in plan.requests]
    req_K = np.array([r.prompt.K for r in plan.requests], dtype=int)
    req_P = np.zeros((len(answers), KMAX))
    for j, a in enumerate(answers):
        req_P[j, :req_K[j]] = a.dist
    idx = plan.row_request
    out = from_matrix(plan.rows, req_P[idx], req_K[idx])
    out["covered_mass"] = np.array([a.covered_mass for a in answers], dtype=float)[idx]
    out["n_valid"] = np.array([a.n_valid for a in answers], dtype=int)[idx]
    out["n_invalid"] = np.array([a.n_invalid for a in answers], dtype=int)[idx]
    out["flags"] = np.array([";".join(sorted(a.flags)) for a in answers], dtype=object)[idx]
    out["prompt_hash"] = np.array([r.prompt.template_hash for r in plan.requests], dtype=object)[idx]
    out["rendered_hash"] = np.array([r.prompt.rendered_hash for r in plan.requests], dtype=object)[idx]
    return out


async def _run(plans: Iterator[GridPlan], backend: Backend, cache: AnswerCache, concurrency: int,
               stats: RunStats, sink, bar) -> None:
    for plan in plans:
        stats.rows += len(plan.rows)
        stats.unique_queries += len(plan.requests)
        stats.deduplicated += len(plan.rows) - len(plan.requests)
        found = cache.get_many([r.key for r in plan.requests])
        answers = {r.key: plan.estimator.parse(found[r.key], r.prompt) for r in plan.requests if r.key in found}
        stats.cache_hits += len(found)
        todo = [r for r in plan.requests if r.key not in answers]
        await ask_all(todo, backend, Committer(cache, backend, plan.estimator), plan.estimator, concurrency,
                       answers, stats)
        table = answers_table(plan, answers)
        stats.invalid_rows += int((table["n_valid"] == 0).sum())
        sink(table)
        bar.update(len(plan.rows))


def _grid(pairs, personas, sink, *, catalog, backend, cache, estimator, order, replicates, seed, concurrency,
          progress, chunk_rows, estimator_params) -> dict:
    with warnings.catch_warnings():  # tqdm.auto warns when ipywidgets is absent, then uses text bars
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    t0 = time.perf_counter()
    identity = backend.identity()
    stats = RunStats(backend=identity)
    plans = iter_plans(pairs, personas, catalog=catalog, backend_identity=identity, estimator=estimator, order=order,
                       replicates=replicates, seed=seed, chunk_rows=chunk_rows, **estimator_params)
    total = len(pairs) * int(replicates) if isinstance(pairs, pd.DataFrame) else None
    with ExitStack() as stack:
        if cache is None:  # repeats across chunks still cost one call: a scratch cache, deleted after
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="vpersona-grid-"))
            cache = stack.enter_context(AnswerCache(Path(tmp) / "scratch.sqlite"))
        bar = stack.enter_context(tqdm(total=total, desc=f"querying {backend.kind}", unit="row", disable=not progress))
        run_coroutine(_run(plans, backend, cache, concurrency, stats, sink, bar))
    stats.seconds = time.perf_counter() - t0
    return stats.as_dict()


def run_grid(pairs: pd.DataFrame, personas: pd.DataFrame, *, catalog: Catalog, backend: Backend,
             cache: AnswerCache | None, estimator: str = "logprobs", order: str = "fixed", replicates: int = 1,
             seed: int = 0, concurrency: int = 8, progress: bool = True, chunk_rows: int = CHUNK_ROWS,
             **estimator_params) -> pd.DataFrame:
    """Ask each persona its questions; one row per pair (x replicate). Run statistics are in
    ``table.attrs["run_stats"]`` (a :class:`RunStats` dict). ``cache=None`` keeps nothing.
    For a large grid use :func:`stream_grid`, which holds no table in memory."""
    parts: list[pd.DataFrame] = []
    stats = _grid(pairs, personas, parts.append, catalog=catalog, backend=backend, cache=cache, estimator=estimator,
                  order=order, replicates=replicates, seed=seed, concurrency=concurrency, progress=progress,
                  chunk_rows=chunk_rows, estimator_params=estimator_params)
    table = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    table.attrs["run_stats"] = stats
    return table


def stream_grid(pairs: pd.DataFrame | Iterable[pd.DataFrame], personas: pd.DataFrame, path: str | Path, *,
                catalog: Catalog, backend: Backend, cache: AnswerCache | None, estimator: str = "logprobs",
                order: str = "fixed", replicates: int = 1, seed: int = 0, concurrency: int = 8,
                progress: bool = True, chunk_rows: int = CHUNK_ROWS, **estimator_params) -> dict:
    """:func:`run_grid` that writes the answers table to ``path`` chunk by chunk (``.csv``, or
    gzip-compressed ``.csv.gz``, reproducible bytes) and returns the run statistics. The file
    holds exactly what ``run_grid(...).to_csv(path, index=False, float_format="%.10g")`` would;
    it is written to ``<path>.part`` and renamed when complete. ``pairs`` may be an iterable of
    persona-major chunks, so not even the plan need be in memory."""
    with AnswersWriter(path) as writer:
        return _grid(pairs, personas, writer.write, catalog=catalog, backend=backend, cache=cache, estimator=estimator,
                     order=order, replicates=replicates, seed=seed, concurrency=concurrency, progress=progress,
                     chunk_rows=chunk_rows, estimator_params=estimator_params)
