"""``ESTIMATOR: auto`` against real loopback servers (uvicorn, tests/llm/loopback_http.py): one
that returns logprobs, one that returns none (as Ollama), one that refuses them (as vLLM with
``--max-logprobs 5``), and a logprobs-stripping proxy in front of the real ``llama_cpp.server``
(full suite). The fallback to ``sample`` is said in a note; ``logprobs`` on such a server stops
at the first reply with an error naming ``auto``."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.llm.backends.base import BackendError
from vpersona.llm.backends.openai_backend import OpenAIBackend
from vpersona.llm.backends.simulated import SimulatedBackend
from vpersona.llm.estimator_choice import choose_estimator
from vpersona.llm.grid import run_grid

_spec = importlib.util.spec_from_file_location("loopback_http", Path(__file__).with_name("loopback_http.py"))
lh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lh)

CATALOG = load_catalog()


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def grid(n_personas=2, items=("Q57", "Q164")):
    personas = pd.DataFrame({"persona_id": [f"p{i}" for i in range(n_personas)], "country": "XXX", "kind": "value",
                             "text": [f"You are respondent {i}." for i in range(n_personas)], "multiplicity": 1})
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": list(items)}), how="cross")
    return pairs.assign(multiplicity=1), personas


def test_auto_keeps_logprobs_where_the_server_returns_them():
    app = lh.EchoApp()
    with lh.Uvicorn(app) as server:
        assert choose_estimator("auto", OpenAIBackend("m", base_url=server.url)) == ("logprobs", None)
    (_, _, probe), = app.requests
    assert probe["logprobs"] is True and probe["top_logprobs"] == 20 and probe["max_tokens"] == 1


def test_auto_falls_back_to_sample_on_a_server_without_logprobs_and_says_so():
    app = lh.NoLogprobsApp()
    with lh.Uvicorn(app) as server:
        backend = OpenAIBackend("m", base_url=server.url, max_retries=0)
        name, note = choose_estimator("auto", backend)
        assert name == "sample"
        assert server.url in note and "no token log-probabilities" in note and "sample estimator" in note
        assert len(app.requests) == 1  # the probe
        pairs, personas = grid()
        table = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=None, estimator=name,
                         concurrency=4, progress=False, n=5)
    assert (table["n_valid"] == 5).all() and table["flags"].eq("").all()
    assert not any(r.get("logprobs") for r in app.requests[1:])  # the run asked for samples, not logprobs
    assert len(app.requests) == 1 + len(pairs) * 5  # the server ignores n: topped up with single requests


def test_auto_falls_back_when_the_server_refuses_logprobs_and_names_the_vllm_flag():
    with lh.Uvicorn(lh.NoLogprobsApp(refuse=True)) as server:
        name, note = choose_estimator("auto", OpenAIBackend("m", base_url=server.url, max_retries=0))
    assert name == "sample" and "--max-logprobs" in note and "greater than max allowed: 5" in note


def test_logprobs_on_such_a_server_stops_at_the_first_reply_naming_auto():
    app = lh.NoLogprobsApp()
    with lh.Uvicorn(app) as server:
        pairs, personas = grid()
        with pytest.raises(BackendError, match="ESTIMATOR: auto") as info:
            run_grid(pairs, personas, catalog=CATALOG, backend=OpenAIBackend("m", base_url=server.url),
                     cache=None, estimator="logprobs", concurrency=1, progress=False)
    assert "reply has none" in str(info.value) and "\n" not in str(info.value)
    assert len(app.requests) == 1


def test_auto_asks_nothing_of_backends_that_always_return_logprobs():
    assert choose_estimator("auto", SimulatedBackend({}, seed=1)) == ("logprobs", None)
    assert choose_estimator("sample", SimulatedBackend({}, seed=1)) == ("sample", None)


@pytest.mark.server
def test_auto_with_the_real_llama_cpp_server_behind_a_logprobs_stripping_proxy(llama_server):
    """SmolLM2 answers through llama_cpp.server; the proxy removes the logprobs, as Ollama's
    endpoint does not return them: auto falls back and the sampled answers are parsed."""
    app = lh.NoLogprobsApp(upstream=llama_server)
    with lh.Uvicorn(app) as server:
        backend = OpenAIBackend("smollm2-135m", base_url=server.url, max_concurrency=2, timeout=120)
        name, note = choose_estimator("auto", backend)
        assert name == "sample" and server.url in note
        pairs, personas = grid(1)
        table = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=None, estimator=name,
                         concurrency=2, progress=False, n=4)
    assert (table["n_valid"] + table["n_invalid"] == 4).all() and table["n_valid"].sum() > 0
