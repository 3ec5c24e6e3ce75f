"""OpenAIBackend against a real OpenAI-compatible server: ``python -m llama_cpp.server`` serving the
embedded GGUF on loopback (fixture ``llama_server`` in conftest.py), compared with the in-process
EmbeddedBackend running the same model file.

Tolerance. Both run the same llama.cpp build on the same GGUF with the same chat template (the
GGUF's own, applied by llama-cpp-python's Jinja formatter: the prompt token counts are checked
equal), so the answers agree closely but not bit for bit: the server computes the log-softmax in
float32 over logits it keeps for every prompt position (``logits_all``), the embedded backend in
float64 over the last position only, and the two evaluate different token batches (each reuses
a different cached prefix), which changes float summation order inside llama.cpp. Measured on
this machine: at most 3e-7 apart in any top-20 log-probability, 3e-8 in any distribution entry.
We assert 1e-4 on log-probabilities and 1e-5 on distributions: far below anything that matters
for a survey distribution, far above float noise.
"""
from __future__ import annotations

import asyncio


import numpy as np
import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.llm.cache import AnswerCache
from vpersona.llm.backends.openai_backend import LLAMA_CPP_PLAIN_SAMPLING, OpenAIBackend
from vpersona.core.distributions import prob_columns
from vpersona.llm.grid import plan_requests, run_grid

pytestmark = pytest.mark.server

CATALOG = load_catalog()
LOGPROB_TOL = 1e-4
DIST_TOL = 1e-5
# The empty persona (kind `none`: no system message, so the chat template inserts its default
# system prompt) and two value personas.
PERSONA_TEXTS = ("", "You live in Nigeria. God is very important in your life.",
                 "You live in Sweden. God is not at all important in your life. You think most people can be trusted.")
ITEMS = ("Q164", "Q57")


def plan(texts=PERSONA_TEXTS, items=ITEMS):
    personas = pd.DataFrame({"persona_id": [f"p{i}" for i in range(len(texts))], "country": "XXX",
                             "kind": "value", "text": list(texts), "multiplicity": 1})
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": list(items)}), how="cross")
    return pairs.assign(multiplicity=1), personas


@pytest.fixture(scope="module")
def embedded():
    from vpersona.llm.backends.embedded import EmbeddedBackend

    return EmbeddedBackend()


@pytest.fixture(scope="module")
def both_grids(llama_server, embedded, tmp_path_factory):
    """The same logprobs grid through the server and in process, each with its own cache; the
    replies are read back from the caches by key."""
    backend = OpenAIBackend("smollm2-135m", base_url=llama_server, max_concurrency=4, timeout=120,
                            api_key_env="VPERSONA_TEST_NO_KEY")
    pairs, personas = plan()
    out = {}
    for name, b in (("server", backend), ("embedded", embedded)):
        with AnswerCache(tmp_path_factory.mktemp(name) / "answers.sqlite") as cache:
            table = run_grid(pairs, personas, catalog=CATALOG, backend=b, cache=cache, progress=False, concurrency=4)
            keys = [r.key for r in plan_requests(pairs, personas, catalog=CATALOG, backend_identity=b.identity()).requests]
            out[name] = (table, [cache.get(k) for k in keys])
    return out


def test_server_returns_top_logprobs_for_chat_completions(both_grids):
    table, replies = both_grids["server"]
    assert table.attrs["run_stats"]["calls"] == len(replies) == 6
    for reply in replies:
        assert len(reply.top_logprobs) >= 19  # 20 asked; distinct token ids may print alike and merge
        assert reply.usage["completion_tokens"] == 1 and reply.usage["prompt_tokens"] > 50
        assert reply.raw["choices"][0]["logprobs"]["content"][0]["top_logprobs"]


def test_logprobs_distributions_match_the_embedded_backend(both_grids):
    via_server, in_process = both_grids["server"][0], both_grids["embedded"][0]
    P, Q = via_server[prob_columns()].to_numpy(), in_process[prob_columns()].to_numpy()
    print(f"max |distribution difference| server vs embedded: {np.abs(P - Q).max():.2e}")  # pytest -s
    assert np.abs(P - Q).max() <= DIST_TOL
    np.testing.assert_allclose(via_server["covered_mass"], in_process["covered_mass"], atol=DIST_TOL)
    assert list(via_server["flags"]) == list(in_process["flags"])
    assert list(via_server["rendered_hash"]) == list(in_process["rendered_hash"])


def test_first_token_logprobs_and_prompt_tokens_match(both_grids):
    worst = 0.0
    for a, b in zip(both_grids["server"][1], both_grids["embedded"][1]):
        assert a.usage["prompt_tokens"] == b.usage["prompt_tokens"]  # same chat template, same tokens
        shared = set(a.top_logprobs) & set(b.top_logprobs)
        assert len(shared) >= len(b.top_logprobs) - 1  # a near-tie at rank 20 may swap
        worst = max(worst, max(abs(a.top_logprobs[t] - b.top_logprobs[t]) for t in shared))
    print(f"max |top-20 logprob difference| server vs embedded: {worst:.2e}")  # pytest -s
    assert worst <= LOGPROB_TOL


def test_sample_estimator_through_the_server(llama_server, embedded):
    """llama_cpp.server ignores `n`: the backend tops up with seed+i, as the embedded backend seeds
    its i-th completion, so with plain sampling both draw the very same answers."""
    server_backend = OpenAIBackend("smollm2-135m", base_url=llama_server, timeout=120,
                                   api_key_env="VPERSONA_TEST_NO_KEY", extra_body=LLAMA_CPP_PLAIN_SAMPLING)
    pairs, personas = plan(PERSONA_TEXTS[1:2], ITEMS[:1])
    kwargs = dict(catalog=CATALOG, progress=False, estimator="sample", n=3, max_tokens=2, seed=11)
    via_server = run_grid(pairs, personas, backend=server_backend, cache=None, **kwargs)
    in_process = run_grid(pairs, personas, backend=embedded, cache=None, **kwargs)
    assert via_server.attrs["run_stats"]["calls"] == 1
    assert via_server["n_valid"].iloc[0] + via_server["n_invalid"].iloc[0] == 3
    pd.testing.assert_frame_equal(via_server, in_process)
    query = plan_requests(pairs, personas, catalog=CATALOG, backend_identity={}, estimator="sample", n=3,
                          max_tokens=2, seed=11).requests[0].query
    texts = asyncio.run(server_backend.acomplete(query)).texts
    assert texts == embedded.complete(query).texts and len(texts) == 3
