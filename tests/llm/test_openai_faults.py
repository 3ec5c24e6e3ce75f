"""OpenAIBackend against a fake transport (httpx.MockTransport): every failure a real server can
produce, and what the user gets back. No network, no model: each test runs in milliseconds, except
those that exercise the client's own retry backoff (about half a second)."""
from __future__ import annotations

import asyncio
import json
import socket
import time
import traceback

import httpx
import pytest

from vpersona.llm.backends.base import BackendError, Query
from vpersona.llm.backends.openai_backend import OpenAIBackend, RequestRateLimiter, request_body

SECRET = "sk-test-SECRET-0123456789abcdef"
FAST_RETRY = {"retry-after-ms": "1"}  # the openai client honours it: keeps retry tests fast

LOGPROBS_QUERY = Query.make([{"role": "system", "content": "You live in Chile."},
                             {"role": "user", "content": "Is God important? A. Yes B. No. Answer with the label."}],
                            max_tokens=1, temperature=0.0, top_logprobs=20)
SAMPLE_QUERY = Query.make(LOGPROBS_QUERY.message_dicts, max_tokens=2, temperature=1.0, n=3, seed=5)


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def completion(text="B", top=None, n=1, logprobs=True):
    """A chat.completion object as OpenAI/vLLM/llama.cpp return it."""
    top = top if top is not None else {"B": -0.2, "A": -1.9, " B": -4.0}
    lp = {"content": [{"token": text[:1], "logprob": max(top.values()), "bytes": None,
                       "top_logprobs": [{"token": t, "logprob": v, "bytes": None} for t, v in top.items()]}]}
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                         "logprobs": lp if logprobs else None, "finish_reason": "length"} for i in range(n)],
            "usage": {"prompt_tokens": 40, "completion_tokens": n, "total_tokens": 40 + n,
                      "prompt_tokens_details": {"cached_tokens": 32}}}


def backend_with(handler, **kwargs):
    """An OpenAIBackend whose HTTP requests go to ``handler(request) -> httpx.Response``."""
    kwargs.setdefault("base_url", "https://llm.example.org/v1")
    kwargs.setdefault("max_retries", 2)
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIBackend("m", http_client=client, **kwargs)


class Script:
    """Answers requests from a list of responses (the last one repeats) and records them."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request):
        self.requests.append(request)
        if request.method == "GET" and request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m-small"}, {"id": "m-large"}]})
        out = self.responses[min(len(self.requests) - 1, len(self.responses) - 1)]
        if isinstance(out, Exception):
            raise out
        return out

    @property
    def bodies(self):
        return [json.loads(r.content) for r in self.requests if r.method == "POST"]


def error(status, message, code=None, headers=None):
    return httpx.Response(status, json={"error": {"message": message, "type": "invalid_request_error",
                                                  "param": None, "code": code}}, headers=headers)


def run(backend, query=LOGPROBS_QUERY):
    return asyncio.run(backend.acomplete(query))


def failure(backend, query=LOGPROBS_QUERY) -> BackendError:
    with pytest.raises(BackendError) as info:
        run(backend, query)
    full = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert SECRET not in full and SECRET[3:] not in full, "the API key leaked into an error"
    return info.value


# -- success paths -------------------------------------------------------------------------

def test_reply_carries_first_token_top_logprobs_and_usage():
    script = Script(httpx.Response(200, json=completion()))
    reply = run(backend_with(script))
    assert reply.texts == ["B"]
    assert reply.top_logprobs == {"B": -0.2, "A": -1.9, " B": -4.0}
    assert reply.usage == {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41,
                           "cached_prompt_tokens": 32}
    sent = script.bodies[0]
    assert sent["model"] == "m" and sent["logprobs"] is True and sent["top_logprobs"] == 20
    assert sent["messages"] == LOGPROBS_QUERY.message_dicts and sent["max_tokens"] == 1
    assert script.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_duplicate_token_strings_are_merged_by_probability():
    top_list = [{"token": "A", "logprob": -1.0}, {"token": "A", "logprob": -1.0}, {"token": "B", "logprob": -2.0}]
    body = completion()
    body["choices"][0]["logprobs"]["content"][0]["top_logprobs"] = top_list
    reply = run(backend_with(Script(httpx.Response(200, json=body))))
    assert reply.top_logprobs["A"] == pytest.approx(-1.0 + 0.693147, abs=1e-5)


def test_server_ignoring_n_is_topped_up_with_distinct_seeds():
    script = Script(httpx.Response(200, json=completion("A", n=1, logprobs=False)))
    reply = run(backend_with(script), SAMPLE_QUERY)
    assert len(reply.texts) == 3 and len(script.bodies) == 3
    assert sorted(b["seed"] for b in script.bodies) == [5, 6, 7]
    assert reply.usage["completion_tokens"] == 3 and reply.usage["prompt_tokens"] == 120


def test_refusal_text_is_recorded_by_the_estimators_not_a_crash():
    from vpersona.data.catalog import load_catalog
    from vpersona.llm.estimators import make_estimator
    from vpersona.llm.prompts import render

    item = load_catalog()["Q164"]
    refusal = completion("I cannot answer that", {"I": -0.05, "Sorry": -3.5, "As": -4.0}, n=3)
    backend = backend_with(Script(httpx.Response(200, json=refusal)))
    for name, expected_flag in (("logprobs", "unparseable"), ("sample", "refusal")):
        estimator = make_estimator(name)
        prompt = render("You live in Chile.", item, estimator=name)
        reply = run(backend, estimator.make_query(prompt, n=3) if name == "sample" else estimator.make_query(prompt))
        answer = estimator.parse(reply, prompt)
        assert not answer.ok and expected_flag in answer.flags, (name, answer)
        assert all(t == "I cannot answer that" for t in reply.texts)


def test_openai_structured_refusal_field_becomes_the_text():
    body = completion(logprobs=False)
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    reply = run(backend_with(Script(httpx.Response(200, json=body))), Query.make(LOGPROBS_QUERY.message_dicts, max_tokens=2))
    assert reply.texts == ["I can't help with that."]


# -- transient failures: the openai client retries ------------------------------------------

def test_429_then_success_is_retried_by_the_client():
    script = Script(error(429, "Rate limit reached", "rate_limit_exceeded", FAST_RETRY),
                    httpx.Response(200, json=completion()))
    assert run(backend_with(script)).texts == ["B"]
    assert len(script.requests) == 2


def test_500s_then_success_is_retried():
    script = Script(error(500, "boom", headers=FAST_RETRY), error(503, "busy", headers=FAST_RETRY),
                    httpx.Response(200, json=completion()))
    assert run(backend_with(script)).texts == ["B"]
    assert len(script.requests) == 3


def test_persistent_500_gives_a_clear_error_after_the_retries():
    script = Script(error(500, "internal meltdown", headers=FAST_RETRY))
    err = failure(backend_with(script, max_retries=2))
    assert len(script.requests) == 3
    assert "HTTP 500" in str(err) and "after 2 retries" in str(err) and "internal meltdown" in str(err)


def test_persistent_429_says_to_slow_down():
    err = failure(backend_with(Script(error(429, "Rate limit reached", headers=FAST_RETRY)), max_retries=1))
    assert "HTTP 429" in str(err) and "requests_per_minute" in str(err)


def test_timeout_then_success():
    script = Script(httpx.ReadTimeout("read timed out"), httpx.Response(200, json=completion()))
    assert run(backend_with(script, max_retries=1)).texts == ["B"]
    assert len(script.requests) == 2


def test_persistent_timeout_names_the_timeout():
    err = failure(backend_with(Script(httpx.ReadTimeout("read timed out")), max_retries=0, timeout=7))
    assert "timeout=7s" in str(err)


def test_nobody_listening_on_a_real_loopback_port():
    with socket.socket() as s:  # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    err = failure(backend)
    assert f"could not connect to http://127.0.0.1:{port}/v1" in str(err)


def test_connection_refused_names_the_url():
    err = failure(backend_with(Script(httpx.ConnectError("connection refused")), max_retries=0))
    assert "could not connect to https://llm.example.org/v1" in str(err)


# -- permanent failures: BackendError that says what to change ------------------------------

def test_malformed_json_body():
    bad = httpx.Response(200, content=b'{"choices": [', headers={"content-type": "application/json"})
    err = failure(backend_with(Script(bad)))
    assert "malformed JSON" in str(err)


def test_json_that_is_not_a_chat_completion():
    err = failure(backend_with(Script(httpx.Response(200, json={"result": "ok"}))))
    assert "no 'choices'" in str(err)


def test_missing_logprobs_hints_at_the_sample_estimator():
    err = failure(backend_with(Script(httpx.Response(200, json=completion(logprobs=False)))))
    assert "no" in str(err) and "logprobs" in str(err) and "estimator='sample'" in str(err)


def test_server_limit_on_top_logprobs_hints_at_vllm_flag():
    msg = "Requested sample logprobs of 20, which is greater than max allowed: 5"
    err = failure(backend_with(Script(error(400, msg))))
    assert "--max-logprobs" in str(err) and "estimator='sample'" in str(err)


def test_context_too_long():
    msg = "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens"
    err = failure(backend_with(Script(error(400, msg, "context_length_exceeded"))))
    assert "context window" in str(err) and "'m'" in str(err)


def test_bad_key_401_never_shows_the_key():
    # Some servers echo the (partly masked, or even full) key back in the message.
    err = failure(backend_with(Script(error(401, f"Incorrect API key provided: {SECRET}", "invalid_api_key"))))
    assert "HTTP 401" in str(err) and "$OPENAI_API_KEY" in str(err)


def test_unknown_model_404_lists_available_models():
    script = Script(error(404, "The model `m` does not exist", "model_not_found"))
    err = failure(backend_with(script))
    assert "HTTP 404" in str(err) and "'m-large'" in str(err) and "'m-small'" in str(err)


def test_key_never_in_repr_or_identity():
    backend = backend_with(Script(httpx.Response(200, json=completion())))
    assert SECRET not in repr(backend) and SECRET not in json.dumps(backend.identity())
    assert backend.identity() == {"kind": "openai", "model": "m", "base_url": "https://llm.example.org/v1"}


def test_identity_drops_credentials_in_the_url():
    backend = OpenAIBackend("m", base_url="https://user:pw@host.example:8443/v1/?token=abc")
    assert backend.identity()["base_url"] == "https://host.example:8443/v1"
    assert "pw" not in repr(backend) and "abc" not in repr(backend)


def test_no_key_for_openai_itself_is_an_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(BackendError, match="set the environment variable OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini")


def test_no_key_for_a_local_server_sends_a_placeholder(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    script = Script(httpx.Response(200, json=completion()))
    run(backend_with(script, base_url="http://127.0.0.1:8000/v1"))
    assert script.requests[0].headers["authorization"] == "Bearer EMPTY"


# -- concurrency and rate limits -------------------------------------------------------------

def test_concurrency_limit_is_respected():
    state = {"now": 0, "peak": 0}

    async def handler(request):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return httpx.Response(200, json=completion())

    backend = backend_with(handler, max_concurrency=4)

    async def many():
        return await asyncio.gather(*(backend.acomplete(LOGPROBS_QUERY) for _ in range(24)))

    assert len(asyncio.run(many())) == 24
    assert state["peak"] == 4


def test_request_rate_limit_spaces_request_starts():
    starts = []

    async def handler(request):
        starts.append(time.monotonic())
        return httpx.Response(200, json=completion())

    backend = backend_with(handler, requests_per_minute=1200)  # one every 50 ms

    async def many():
        await asyncio.gather(*(backend.acomplete(LOGPROBS_QUERY) for _ in range(5)))

    asyncio.run(many())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # the limiter spaces the *starts* 50 ms apart; what the handler sees carries the client's own
    # jitter (a few ms on a loaded machine), so: the span of 4 gaps, and no two requests together
    assert 0.18 <= starts[-1] - starts[0] < 1.0 and min(gaps) >= 0.02, gaps


def test_rate_limit_must_be_positive():
    with pytest.raises(ValueError, match="requests_per_minute"):
        RequestRateLimiter(0)


def test_backend_survives_successive_event_loops():
    """A notebook calls asyncio.run once per grid: the semaphore and client follow the loop."""
    script = Script(httpx.Response(200, json=completion()))
    backend = backend_with(script, max_concurrency=2)

    async def many():
        return await asyncio.gather(*(backend.acomplete(LOGPROBS_QUERY) for _ in range(6)))

    for _ in range(2):
        assert len(asyncio.run(many())) == 6
    assert len(script.requests) == 12


def test_request_body_is_what_a_batch_line_needs():
    body = request_body("gpt-4o-mini", LOGPROBS_QUERY)
    assert body == {"model": "gpt-4o-mini", "messages": LOGPROBS_QUERY.message_dicts, "logprobs": True,
                    "max_tokens": 1, "temperature": 0.0, "top_logprobs": 20}
