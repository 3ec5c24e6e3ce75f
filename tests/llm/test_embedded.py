"""The in-process llama.cpp backend on the bundled SmolLM2-135M: deterministic, prefix reuse is real
(counted in evaluated tokens) and changes nothing in the logprobs."""
import asyncio
import math

import pytest

from vpersona import load_catalog
from vpersona.llm.backends.base import Backend, BackendError, Query
from vpersona.llm.estimators import make_estimator
from vpersona.llm.prompts import render

pytest.importorskip("llama_cpp")
from vpersona.llm.backends.embedded import EmbeddedBackend, default_model_path  # noqa: E402

CATALOG = load_catalog()
PERSONA = ("You live in Nigeria. God is very important in your life. Abortion is never justifiable. "
           "You are very proud of your nationality. You are quite happy.")
LOGPROBS = make_estimator("logprobs")


@pytest.fixture(scope="module")
def backend():
    return EmbeddedBackend(n_threads=1)  # one thread: robust on a shared machine; bits do not depend on it


def _query(persona, code, estimator=LOGPROBS, **params):
    return estimator.make_query(render(persona, CATALOG[code], estimator=estimator.name), **params)


def test_identity_names_the_model_file(backend):
    ident = backend.identity()
    path = default_model_path()
    assert isinstance(backend, Backend) and backend.kind == "embedded"
    assert ident["model"] == path.name and ident["model_bytes"] == path.stat().st_size
    assert len(ident["model_head_sha256"]) == 64 and ident["llama_cpp"]


def test_logprobs_reply_is_a_distribution_and_deterministic(backend):
    q = _query(PERSONA, "Q46")
    r1, r2 = backend.complete(q), backend.complete(q)
    assert r1.top_logprobs == r2.top_logprobs and r1.texts == r2.texts
    assert len(r1.top_logprobs) <= 20 and r1.usage["completion_tokens"] == 1
    assert max(r1.top_logprobs.values()) <= 0 and sum(math.exp(v) for v in r1.top_logprobs.values()) <= 1 + 1e-9
    a = LOGPROBS.parse(r1, render(PERSONA, CATALOG["Q46"]))
    assert a.n_valid == 1 and 0 < a.covered_mass <= 1 and abs(a.dist.sum() - 1) < 1e-12


def test_persona_prefix_is_evaluated_once_per_persona(backend):
    other = "You live in Sweden. God is not at all important in your life."
    codes = ["Q46", "Q57", "Q1"]
    queries = [_query(p, c) for p in (PERSONA, other) for c in codes]  # persona-major
    token_lists = [backend.tokenize_messages(q.message_dicts) for q in queries]
    backend.complete(_query("Unrelated warm-up persona.", "Q6"))
    backend.reset_stats()
    for q in queries:
        backend.complete(q)
    # expected: the first question of a persona evaluates the whole prompt, the next ones only
    # what follows the persona's system message
    splits = [backend.prefix_length(q.message_dicts, t) for q, t in zip(queries, token_lists)]
    expected = sum(len(t) if i % 3 == 0 else len(t) - k for i, (t, k) in enumerate(zip(token_lists, splits)))
    s = backend.stats
    assert s.prompts == 6 and s.prompt_tokens == sum(map(len, token_lists))
    assert s.evaluated_prompt_tokens == expected
    persona_tokens = len(backend.tokenize_messages([{"role": "system", "content": PERSONA}]))
    assert splits[0] >= persona_tokens - 5  # the cut is after the persona
    assert s.prompt_tokens - s.evaluated_prompt_tokens >= 2 * (persona_tokens - 5)  # 2 questions reused persona 1


def test_answers_do_not_depend_on_what_was_asked_before(backend):
    """The same prompt, asked in different orders (so with different KV-cache contents before
    it), gives bit-identical logprobs: prompts are always evaluated in the same two batches."""
    _check_order_independence(backend)


@pytest.mark.slow
@pytest.mark.full
def test_answers_do_not_depend_on_what_was_asked_before_on_qwen():
    """The same check on the opt-in Qwen2.5-1.5B (Q4_K_M: other kernels than SmolLM2's Q4_1)."""
    from vpersona.llm import models
    if not models.is_fetched("qwen2.5-1.5b"):
        pytest.skip("qwen2.5-1.5b is not fetched (vpersona model fetch qwen2.5-1.5b, 1.1 GB)")
    qwen = EmbeddedBackend("qwen2.5-1.5b", n_threads=1)
    assert qwen.identity()["model"] == models.MODELS["qwen2.5-1.5b"].file_name
    _check_order_independence(qwen)
    assert qwen.stats.evaluated_prompt_tokens < qwen.stats.prompt_tokens  # the persona prefix was reused


def _check_order_independence(backend):
    other = "You live in Sweden. God is not at all important in your life."
    queries = [_query(p, c) for p in (PERSONA, other, "") for c in ("Q46", "Q57", "Q164")]
    orders = [list(range(9)), [8, 4, 0, 7, 3, 6, 1, 5, 2], [2, 2, 1, 1, 0, 0, 5, 3, 4, 8, 7, 6]]
    seen = {}
    for order in orders:
        for i in order:
            seen.setdefault(i, []).append(backend.complete(queries[i]).top_logprobs)
    for i, answers in seen.items():
        assert all(a == answers[0] for a in answers), f"query {i} changed with the order"


def test_prefix_reuse_changes_no_bit_of_the_answer(backend):
    fresh = EmbeddedBackend(n_threads=1, prefix_reuse=False)
    queries = [_query(PERSONA, c) for c in ("Q46", "Q57", "Q164")]
    reused = [backend.complete(q).top_logprobs for q in queries]
    recomputed = [fresh.complete(q).top_logprobs for q in queries]
    assert reused == recomputed
    assert fresh.stats.evaluated_prompt_tokens == fresh.stats.prompt_tokens


def test_sampling_is_seeded(backend):
    est = make_estimator("sample", n=3, temperature=1.0, max_tokens=3)
    q = _query(PERSONA, "Q57", est, seed=7)
    r1 = backend.complete(q)
    assert len(r1.texts) == 3 and r1.top_logprobs is None
    assert backend.complete(q).texts == r1.texts
    ans = est.parse(r1, render(PERSONA, CATALOG["Q57"], estimator="sample"))
    assert ans.n_valid + ans.n_invalid == 3


def test_acomplete_serves_concurrent_callers_one_at_a_time(backend):
    queries = [_query(PERSONA, c) for c in ("Q46", "Q57", "Q46", "Q57")]

    async def main():
        return await asyncio.gather(*(backend.acomplete(q) for q in queries))

    replies = asyncio.run(main())
    assert replies[0].top_logprobs == replies[2].top_logprobs == backend.complete(queries[0]).top_logprobs
    assert asyncio.run(main())[1].top_logprobs == replies[1].top_logprobs  # a second event loop works too


def test_permanent_errors_are_backend_errors(backend, tmp_path):
    with pytest.raises(BackendError, match="exceeds the context window"):
        backend.complete(_query("You are a person. " * 600, "Q46"))
    with pytest.raises(BackendError, match="does not exist"):
        EmbeddedBackend(model_path=tmp_path / "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="could not load"):
        EmbeddedBackend(model_path=bad)
    with pytest.raises(BackendError, match="max_tokens=1"):
        backend.complete(Query.make([{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0.0, top_logprobs=5))


def test_default_threads_leave_busy_cores_alone(monkeypatch):
    """llama.cpp threads spin-wait: on an oversubscribed machine one thread, on an idle one every core."""
    from vpersona.llm.backends import embedded
    monkeypatch.setattr(embedded.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("VPERSONA_THREADS", raising=False)
    # one unit of load is the caller waiting on the model (a test runner, the previous notebook)
    for load, expected in ((0.0, 2), (0.9, 2), (1.2, 2), (1.9, 2), (2.5, 1), (7.0, 1)):
        monkeypatch.setattr(embedded.os, "getloadavg", lambda: (load, load, load))
        assert embedded.default_threads() == expected, load
    monkeypatch.setenv("VPERSONA_THREADS", "3")
    assert embedded.default_threads() == 3
    monkeypatch.setenv("VPERSONA_THREADS", "two")
    with pytest.raises(BackendError, match="VPERSONA_THREADS='two'"):
        embedded.default_threads()
