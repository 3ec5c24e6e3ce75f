"""The grid's plan of one chunk: distinct requests (cache key, query, prompt) and, per row, which
requests answer it (:class:`GridPlan`), built by :class:`ChunkPlanner` from memoised parts."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from hashlib import sha256
from typing import NamedTuple

import numpy as np
import pandas as pd

from vpersona.core.seeds import derive_seed
from vpersona.data.catalog import Catalog
from vpersona.llm.backends.base import Query, cache_key
from vpersona.llm.contextual import CONTENT_FREE_INPUTS, content_free_prompt
from vpersona.llm.estimators import Estimator
from vpersona.llm.orderings import orderings
from vpersona.llm.prompts import Prompt, render, system_message


class Request(NamedTuple):  # a tuple: the cheapest object to make, one per prompt
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
    ``row_prior[i]``: index into ``priors`` of the row's label prior (contextual calibration), or
    -1; ``priors[g]``: indices into ``requests`` of that prior's content-free requests (one per
    content-free input, averaged)."""

    requests: list[Request]
    rows: pd.DataFrame
    row_requests: list[tuple[int, ...]]
    row_prior: np.ndarray
    estimator: Estimator
    low_mass: str = "weight"
    priors: list[tuple[int, ...]] = field(default_factory=list)


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


class ChunkPlanner:
    """Prompts, queries and cache keys of a grid, chunk by chunk, built from memoised parts.

    A prompt is the persona's system message (the same for all its questions) and the question's
    user message (the same for every persona shown the same option order); the JSON of the
    messages, which both the prompt's ``rendered_hash`` and the cache key hash, is the two parts'
    JSON joined. So the system message is made once per persona and chunk
    (:func:`~vpersona.llm.prompts.system_message`, which :func:`render` uses too) and
    :func:`render` runs once per (question, ordering) of the grid instead of once per pair. The
    first row of each chunk is checked against the plain path (``render``, ``make_query``,
    ``base.cache_key``): any disagreement stops the run.
    """

    def __init__(self, catalog: Catalog, est: Estimator, estimator: str, identity: dict, replicates: int, seed: int):
        self.catalog, self.est, self.estimator, self.identity = catalog, est, estimator, identity
        self.replicates, self.seed = replicates, seed
        self.params = [{"seed": derive_seed(seed, "replicate", r)} if est.uses_seed else {} for r in range(replicates)]
        self.head = sha256(('{"backend":' + _dumps(identity) + ',"estimator":' + _dumps(estimator)
                            + ',"messages":').encode("utf-8"))  # copied, then fed the rest of the key's JSON
        self.questions: dict[tuple, tuple] = {}
        self.systems: dict[str, tuple | None] = {}

    def _question(self, item, perm) -> tuple:
        base = render("", item, estimator=self.estimator, option_index=perm)  # no persona: user message only
        (user,) = base.messages
        queries = [self.est.make_query(base, **p) for p in self.params]
        tails = [(',"params":' + _dumps(q.param_dict) + ',"replicate":' + str(r) + "}").encode("utf-8")
                 for r, q in enumerate(queries)]
        return base, _dumps(user).encode("utf-8"), queries, tails

    def _system(self, text: str) -> tuple | None:
        system = system_message(text)
        if system is None:
            return None
        return system, b"[" + _dumps(system).encode("utf-8") + b",", tuple(sorted(system.items()))

    def request(self, text: str, item, perm, r: int) -> tuple[Prompt, Query, str]:
        qkey = (item.code, perm)
        q = self.questions.get(qkey)
        if q is None:
            q = self.questions[qkey] = self._question(item, perm)
        base, user_json, queries, tails = q
        s = self.systems.get(text, False)
        if s is False:
            s = self.systems[text] = self._system(text)
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

    def slow(self, prompt: Prompt, r: int) -> tuple[Prompt, Query, str]:
        query = self.est.make_query(prompt, **self.params[r])
        return prompt, query, cache_key(self.identity, query, self.estimator, r)

    def check(self, text: str, item, perm, r: int, got: tuple) -> None:
        if got != self.slow(render(text, item, estimator=self.estimator, option_index=perm), r):
            raise RuntimeError(f"internal error: the grid planner's prompt/key for item {item.code} differs from "
                               f"prompts.render + base.cache_key; please report it")

    def plan(self, joined: pd.DataFrame, pair_cols: list[str], order: str, low_mass: str) -> GridPlan:
        self.systems = {}  # persona-major: a chunk's personas rarely recur, so their memo goes with it
        requests: list[Request] = []
        index_of: dict[str, int] = {}
        contextual = bool(getattr(self.est, "contextual", False))

        def add(got: tuple, r: int) -> int:
            prompt, query, key = got
            j = index_of.get(key)
            if j is None:
                j = index_of[key] = len(requests)
                requests.append(Request(key, query, prompt, r))
            return j

        row_requests, row_prior = [], []
        fixed_perms: dict[int, tuple] = {}  # every order but `random` depends on K alone
        items = {code: self.catalog[code] for code in joined["item"].unique()}
        countries = joined["country"].tolist() if "country" in joined.columns else [None] * len(joined)
        kinds = joined["kind"].tolist() if "kind" in joined.columns else [""] * len(joined)
        first = True
        for text, code, country, persona, kind in zip(joined["text"].tolist(), joined["item"].tolist(), countries,
                                                      joined["persona_id"].tolist(), kinds):
            item = items[code]
            K = item.n_options
            # a prior per persona kind (its content-free layout) and K
            prior = (kind if text.strip() else None, K) if contextual else None
            for r in range(self.replicates):
                if order == "random":
                    perms = orderings(K, order, seed=self.seed, country=country, persona=persona, item=code,
                                      replicate=r)
                else:
                    perms = fixed_perms.get(K) or fixed_perms.setdefault(K, orderings(K, order))
                ids = []
                for perm in perms:
                    got = self.request(text, item, perm, r)
                    if first:
                        self.check(text, item, perm, r, got)
                        first = False
                    ids.append(add(got, r))
                row_requests.append(tuple(ids))
                row_prior.append(prior)
        # content-free prompts last, so they do not interrupt a persona's run of shared-prefix prompts
        # several content-free inputs per prior (averaged when parsed); kinds with the same content-free
        # layout ask the same prompts, deduplicated by key
        def content_free(kind, K, x):
            prompt = content_free_prompt("none" if kind is None else kind, K, x,
                                         persona_text="" if kind is None else "x", estimator=self.estimator)
            return add(self.slow(prompt, 0), 0)

        groups = {k: tuple(content_free(*k, x) for x in CONTENT_FREE_INPUTS)
                  for k in dict.fromkeys(k for k in row_prior if k is not None)}
        prior_index = {k: g for g, k in enumerate(groups)}
        R = self.replicates
        rows = joined[pair_cols]
        if R > 1:
            rows = rows.loc[rows.index.repeat(R)]
        rows = rows.reset_index(drop=True).assign(replicate=np.tile(np.arange(R), len(joined)))
        return GridPlan(requests=requests, rows=rows, row_requests=row_requests,
                        row_prior=np.array([-1 if k is None else prior_index[k] for k in row_prior], dtype=np.int64),
                        estimator=self.est, low_mass=low_mass, priors=list(groups.values()))
