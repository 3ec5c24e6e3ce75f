"""The Batch path: grid -> Batch JSONL -> (a batch runner) -> results JSONL -> cache -> grid from cache.

The round trip at the end gets its results from a real model: every request line is sent as it
is to ``llama_cpp.server`` (fixture ``llama_server``), and the replies are written in the OpenAI
Batch output format. The other tests use hand-made result lines to cover every kind of failure.
"""
from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.llm.backends.openai_backend import OpenAIBackend, request_body
from vpersona.llm.batch import ENDPOINT, read_batch_results, write_batch_requests
from vpersona.llm.cache import AnswerCache
from vpersona.core.distributions import prob_columns
from vpersona.llm.grid import plan_requests, run_grid

CATALOG = load_catalog()
BASE_URL = "http://127.0.0.1:9/v1"  # never contacted unless a test says so


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def plan(n_personas=2, items=("Q46", "Q57")):
    texts = ["You live in Japan. You think most people can be trusted.",
             "You live in Peru. God is very important in your life.", "You live in Norway."][:n_personas]
    personas = pd.DataFrame({"persona_id": [f"p{i}" for i in range(n_personas)], "country": "XXX", "kind": "value",
                             "text": texts, "multiplicity": 1})
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": list(items)}), how="cross")
    return pairs.assign(multiplicity=1), personas


class CountingServer:
    """A fake OpenAI server for the grid's live calls: counts them, answers option A."""

    def __init__(self):
        self.calls = 0

    def __call__(self, request):
        self.calls += 1
        return httpx.Response(200, json=completion_body())


def backend(server=None, base_url=BASE_URL):
    client = httpx.AsyncClient(transport=httpx.MockTransport(server or CountingServer()))
    return OpenAIBackend("test-model", base_url=base_url, http_client=client, max_retries=0)


def completion_body(top=None, n=1):
    top = top or {"A": -0.3, "B": -1.5, " C": -3.0}
    lp = {"content": [{"token": "A", "logprob": -0.3, "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()]}]}
    return {"id": "chatcmpl-x", "object": "chat.completion", "model": "test-model",
            "choices": [{"index": i, "message": {"role": "assistant", "content": "A"}, "logprobs": lp} for i in range(n)],
            "usage": {"prompt_tokens": 60, "completion_tokens": 1, "total_tokens": 61}}


def result_line(custom_id, body=None, status=200, error=None):
    response = None if error else {"status_code": status, "request_id": "req-1", "body": body}
    return json.dumps({"id": "batch_req_1", "custom_id": custom_id, "response": response, "error": error})


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- writing -----------------------------------------------------------------------------------

def test_request_lines_are_the_queries_a_live_run_sends(tmp_path):
    pairs, personas = plan()
    b = backend()
    report = write_batch_requests(pairs, personas, tmp_path / "requests.jsonl", catalog=CATALOG, backend=b)
    lines = read_lines(tmp_path / "requests.jsonl")
    expected = plan_requests(pairs, personas, catalog=CATALOG, backend_identity=b.identity()).requests
    assert report.requests == len(lines) == len(expected) == 4 and report.files == [tmp_path / "requests.jsonl"]
    for line, request in zip(lines, expected):
        assert set(line) == {"custom_id", "method", "url", "body"}
        assert line["custom_id"] == request.key and line["method"] == "POST" and line["url"] == ENDPOINT
        assert line["body"] == request_body("test-model", request.query)
        assert line["body"]["logprobs"] is True and line["body"]["max_tokens"] == 1


def test_same_inputs_same_bytes_and_cached_queries_skipped(tmp_path):
    pairs, personas = plan()
    b = backend()
    with AnswerCache(tmp_path / "answers.sqlite") as cache:
        write_batch_requests(pairs, personas, tmp_path / "one.jsonl", catalog=CATALOG, backend=b, cache=cache)
        write_batch_requests(pairs, personas, tmp_path / "two.jsonl", catalog=CATALOG, backend=b, cache=cache)
        assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
        run_grid(pairs.iloc[:1], personas, catalog=CATALOG, backend=b, cache=cache, progress=False)
        report = write_batch_requests(pairs, personas, tmp_path / "rest.jsonl", catalog=CATALOG, backend=b, cache=cache)
    assert (report.requests, report.already_cached, report.unique_queries) == (3, 1, 4)
    assert len(read_lines(tmp_path / "rest.jsonl")) == 3


def test_large_grids_are_split_into_files(tmp_path):
    pairs, personas = plan(3, ("Q46", "Q57"))
    report = write_batch_requests(pairs, personas, tmp_path / "req.jsonl", catalog=CATALOG, backend=backend(),
                                  max_requests_per_file=4)
    assert [f.name for f in report.files] == ["req-0001.jsonl", "req-0002.jsonl"]
    assert [len(read_lines(f)) for f in report.files] == [4, 2]


def test_sample_estimator_lines_carry_n_and_seed(tmp_path):
    pairs, personas = plan(1, ("Q46",))
    write_batch_requests(pairs, personas, tmp_path / "s.jsonl", catalog=CATALOG, backend=backend(),
                         estimator="sample", n=5)
    body = read_lines(tmp_path / "s.jsonl")[0]["body"]
    assert body["n"] == 5 and "seed" in body and "logprobs" not in body


def test_a_backend_without_a_model_name_is_refused(tmp_path):
    pairs, personas = plan()

    class NotOpenAI:
        kind = "x"

        def identity(self):
            return {"kind": "x"}

    with pytest.raises(TypeError, match="needs an OpenAIBackend"):
        write_batch_requests(pairs, personas, tmp_path / "r.jsonl", catalog=CATALOG, backend=NotOpenAI())


# -- reading -----------------------------------------------------------------------------------

def test_error_lines_are_counted_never_fatal_and_only_those_are_asked_live(tmp_path):
    pairs, personas = plan(3, ("Q46", "Q57"))  # 6 queries
    server = CountingServer()
    b = backend(server)
    write_batch_requests(pairs, personas, tmp_path / "req.jsonl", catalog=CATALOG, backend=b)
    ids = [line["custom_id"] for line in read_lines(tmp_path / "req.jsonl")]
    no_logprobs = completion_body()
    no_logprobs["choices"][0]["logprobs"] = None
    lines = [
        result_line(ids[0], completion_body()),
        result_line(ids[1], completion_body()),
        result_line(ids[1], completion_body()),                                   # duplicate
        result_line(ids[2], error={"code": "batch_expired", "message": "expired"}),  # error object
        result_line(ids[3], {"error": {"message": "server exploded"}}, status=500),  # HTTP error
        result_line(ids[4], no_logprobs),                                         # no logprobs
        result_line("f" * 64, completion_body()),                                 # not in this grid
        '{"custom_id": "truncated',                                               # malformed
        "",
        result_line(ids[5], {"choices": []}),                                     # not a completion
        json.dumps({"id": "vllm-1", "custom_id": ids[5], "error": "Requested sample logprobs of 20, which "
                    "is greater than max allowed: 5",                             # vLLM run-batch error
                    "response": {"status_code": 400, "request_id": "vllm-batch-1", "body": None}}),
    ]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    with AnswerCache(tmp_path / "answers.sqlite") as cache:
        report = read_batch_results(tmp_path / "results.jsonl", pairs, personas, catalog=CATALOG, backend=b,
                                    cache=cache)
        assert report.stored == 2 and len(cache) == 2
        assert dict(report.failed) == {"duplicate": 1, "error": 2, "http_500": 1, "bad_reply": 2,
                                       "unknown_id": 1, "malformed": 1}
        assert report.missing == 4
        assert "batch_expired expired" in str(report) and "estimator='sample'" in str(report)
        table = run_grid(pairs, personas, catalog=CATALOG, backend=b, cache=cache, progress=False)
    assert server.calls == 4 and table.attrs["run_stats"]["cache_hits"] == 2
    np.testing.assert_allclose(table[prob_columns()].sum(axis=1), 1.0)


def test_reading_twice_stores_nothing_new(tmp_path):
    pairs, personas = plan(1, ("Q46",))
    b = backend()
    write_batch_requests(pairs, personas, tmp_path / "req.jsonl", catalog=CATALOG, backend=b)
    (custom_id,) = [line["custom_id"] for line in read_lines(tmp_path / "req.jsonl")]
    (tmp_path / "res.jsonl").write_text(result_line(custom_id, completion_body()) + "\n")
    with AnswerCache(tmp_path / "answers.sqlite") as cache:
        first = read_batch_results(tmp_path / "res.jsonl", pairs, personas, catalog=CATALOG, backend=b, cache=cache)
        second = read_batch_results(tmp_path / "res.jsonl", pairs, personas, catalog=CATALOG, backend=b, cache=cache)
    assert (first.stored, second.stored, second.already_cached, second.missing) == (1, 0, 1, 0)


def test_results_for_another_model_are_unknown_ids(tmp_path):
    pairs, personas = plan(1, ("Q46",))
    write_batch_requests(pairs, personas, tmp_path / "req.jsonl", catalog=CATALOG, backend=backend())
    (custom_id,) = [line["custom_id"] for line in read_lines(tmp_path / "req.jsonl")]
    (tmp_path / "res.jsonl").write_text(result_line(custom_id, completion_body()) + "\n")
    other = OpenAIBackend("another-model", base_url=BASE_URL)
    with AnswerCache(tmp_path / "answers.sqlite") as cache:
        report = read_batch_results(tmp_path / "res.jsonl", pairs, personas, catalog=CATALOG, backend=other,
                                    cache=cache)
    assert report.stored == 0 and report.failed == {"unknown_id": 1} and report.missing == 1


# -- round trip with a real model --------------------------------------------------------------

@pytest.mark.server
def test_round_trip_with_real_answers_from_llama_cpp_server(llama_server, tmp_path):
    """Requests file -> each body POSTed to the real server (what a batch runner does) -> results
    file in the OpenAI Batch output format -> cache -> run_grid makes no call at all."""
    pairs, personas = plan(2, ("Q46",))
    b = OpenAIBackend("smollm2-135m", base_url=llama_server, timeout=120)
    write_batch_requests(pairs, personas, tmp_path / "req.jsonl", catalog=CATALOG, backend=b)
    out = []
    with httpx.Client(base_url=llama_server, timeout=120) as http:
        for i, line in enumerate(read_lines(tmp_path / "req.jsonl")):
            assert line["url"] == "/v1/chat/completions" and llama_server.endswith("/v1")
            response = http.post("/chat/completions", json=line["body"])
            out.append(json.dumps({"id": f"batch_req_{i}", "custom_id": line["custom_id"], "error": None,
                                   "response": {"status_code": response.status_code, "request_id": f"req_{i}",
                                                "body": response.json()}}))
    (tmp_path / "results.jsonl").write_text("\n".join(out) + "\n")
    with AnswerCache(tmp_path / "answers.sqlite") as cache:
        report = read_batch_results(tmp_path / "results.jsonl", pairs, personas, catalog=CATALOG, backend=b,
                                    cache=cache)
        assert (report.stored, report.n_failed, report.missing) == (2, 0, 0), str(report)
        from_cache = run_grid(pairs, personas, catalog=CATALOG, backend=b, cache=cache, progress=False)
    assert from_cache.attrs["run_stats"]["calls"] == 0 and from_cache.attrs["run_stats"]["cache_hits"] == 2
    live = run_grid(pairs, personas, catalog=CATALOG, backend=b, cache=None, progress=False)
    assert live.attrs["run_stats"]["calls"] == 2
    # Same server, same prompts: equal up to llama.cpp float noise from prefix reuse.
    np.testing.assert_allclose(from_cache[prob_columns()], live[prob_columns()], atol=1e-5)
    assert (from_cache["covered_mass"] > 0).all()
