"""The OpenAI backend's HTTP behaviour against real servers on loopback (tests/llm/loopback_http.py):
uvicorn with a short keep-alive, a restart, 1xx interim responses, a proxy from the environment,
organisation headers, Retry-After and the retry count, broken framing, and thousands of requests
in flight where every cached answer is checked against its own request (the servers echo an
identity of each request). Every loop is bounded; every server is stopped by its test."""
from __future__ import annotations

import asyncio
import importlib.util
import time
from pathlib import Path

import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.llm.backends.base import BackendError, Query
from vpersona.llm.backends.openai_backend import OpenAIBackend, request_body
from vpersona.llm.cache import AnswerCache
from vpersona.llm.grid import plan_requests, run_grid

_spec = importlib.util.spec_from_file_location("loopback_http", Path(__file__).with_name("loopback_http.py"))
lh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lh)

CATALOG = load_catalog()
FAST_RETRY = [("retry-after-ms", "1")]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-test")
    for name in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "HTTP_PROXY", "http_proxy",
                 "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def queries(n: int) -> list[Query]:
    return [Query.make([{"role": "user", "content": f"Question {i}: A or B?"}], max_tokens=1, temperature=0.0,
                       top_logprobs=2) for i in range(n)]


def check_echo(query: Query, reply, model: str = "m") -> None:
    ident = lh.identity(request_body(model, query))
    assert reply.raw["id"] == f"chatcmpl-{ident}", "an answer to another request"
    assert reply.top_logprobs == lh.expected_top(ident)


async def ask_all(backend: OpenAIBackend, qs: list[Query]) -> list:
    return await asyncio.gather(*(backend.acomplete(q) for q in qs))


def bursts(url: str, sizes=(64, 3, 3), pause: float = 2.0, between=None, **kwargs) -> list[float]:
    """Bursts of ``sizes`` requests over one backend (64 in flight) in one event loop, ``pause`` s
    apart (``between()`` called in each pause); every answer checked; returns each burst's seconds."""
    backend = OpenAIBackend("m", base_url=url, max_concurrency=64, max_retries=5, timeout=10, **kwargs)
    qs = iter(queries(sum(sizes)))

    async def go():
        times = []
        for b, size in enumerate(sizes):
            if b:
                await asyncio.sleep(pause)
                if between is not None:
                    await asyncio.to_thread(between)
            batch = [next(qs) for _ in range(size)]
            t0 = time.perf_counter()
            for q, reply in zip(batch, await ask_all(backend, batch)):
                check_echo(q, reply)
            times.append(time.perf_counter() - t0)
        await backend.aclose()
        return times

    return asyncio.run(go())


# -- connections the server closed --------------------------------------------------------------

def test_idle_connections_past_the_servers_keep_alive_are_not_reused():
    """uvicorn closes connections idle for 1 s (vLLM: --timeout-keep-alive, default 5 s); after 64
    requests in flight the client pauses 2 s between bursts and must open fresh connections, at
    once, without failures."""
    app = lh.EchoApp()
    with lh.Uvicorn(app, keep_alive=1) as server:
        times = bursts(server.url)
    assert len(app.requests) == 64 + 3 + 3  # no request was sent twice
    assert max(times[1:]) < 1.0, times


def test_a_server_restart_while_connections_are_idle():
    app = lh.EchoApp()
    server = lh.Uvicorn(app, keep_alive=30).start()

    def restart():
        server.stop()
        server.start()

    try:
        times = bursts(server.url, sizes=(64, 3), pause=0.2, between=restart)
    finally:
        server.stop()
    assert times[1] < 1.0, times


# -- 1xx interim responses ------------------------------------------------------------------------

EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"


def with_early_hints(every: int):
    """A reply function for RawServer: a 103 Early Hints before the 200 of every ``every``-th request."""
    def reply(n, body):
        ok = lh.response(200, lh.echo_completion(body))
        return EARLY_HINTS + ok if n % every == 0 else ok
    return reply


def test_103_early_hints_before_the_200_are_skipped():
    with lh.RawServer(with_early_hints(every=1)) as server:
        backend = OpenAIBackend("m", base_url=server.url, max_concurrency=2, max_retries=0, timeout=5)
        qs = queries(6)
        replies = asyncio.run(ask_all(backend, qs))
    for q, reply in zip(qs, replies):
        check_echo(q, reply)
    assert len(server.requests) == 6


# -- many requests in flight: every cached answer belongs to its own request ----------------------

def grid_inputs(n_personas: int, items=("Q57", "Q164", "Q46", "Q45", "Q182", "Q184", "Q209", "Q254")):
    personas = pd.DataFrame({"persona_id": [f"p{i}" for i in range(n_personas)], "country": "XXX", "kind": "value",
                             "text": [f"You are respondent number {i}." for i in range(n_personas)], "multiplicity": 1})
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": list(items)}), how="cross")
    return pairs.assign(multiplicity=1), personas


@pytest.mark.parametrize("concurrency", [64, 256])
def test_2000_requests_in_flight_each_cached_answer_is_its_own(concurrency, tmp_path):
    """2,000 distinct requests through the grid runner into the answer cache, with random server
    delays (replies complete out of order across connections) and a 103 before 1% of the 200s;
    then every cached reply is checked against the request its cache key names."""
    pairs, personas = grid_inputs(250)
    with lh.RawServer(with_early_hints(every=100), max_delay=0.01, seed=concurrency) as server:
        backend = OpenAIBackend("m", base_url=server.url, max_concurrency=concurrency, max_retries=2, timeout=30)
        with AnswerCache(tmp_path / "cache.sqlite") as cache:
            run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, concurrency=concurrency,
                     progress=False)
            plan = plan_requests(pairs, personas, catalog=CATALOG, backend_identity=backend.identity())
            cached = cache.get_many([r.key for r in plan.requests])
    assert len(plan.requests) == 2000 and len(cached) == 2000
    wrong = sum(cached[r.key].raw["id"] != f"chatcmpl-{lh.identity(request_body('m', r.query))}" for r in plan.requests)
    assert wrong == 0, f"{wrong} of 2000 cached answers belong to another request"
    for r in plan.requests:
        check_echo(r.query, cached[r.key])
    assert len(server.requests) == 2000 and len(server.peers) <= concurrency  # pool bounded by CONCURRENCY


# -- a proxy from the environment -------------------------------------------------------------------

@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_server_reachable_only_through_the_proxy_in_the_environment(variable, monkeypatch):
    """``llm.internal.test`` resolves nowhere but in the proxy, which forwards it to the server."""
    with lh.RawServer() as server, lh.ForwardProxy({"llm.internal.test": ("127.0.0.1", server.port)}) as proxy:
        monkeypatch.setenv(variable, proxy.url)
        backend = OpenAIBackend("m", base_url="http://llm.internal.test/v1", max_retries=0, timeout=5)
        qs = queries(3)
        replies = asyncio.run(ask_all(backend, qs))
    for q, reply in zip(qs, replies):
        check_echo(q, reply)
    assert proxy.seen.count(("POST", "http://llm.internal.test/v1/chat/completions")) == 3


# -- SDK semantics: headers, retries, Retry-After ----------------------------------------------------

def one(url: str, **kwargs):
    backend = OpenAIBackend("m", base_url=url, timeout=10, **kwargs)
    return asyncio.run(backend.acomplete(queries(1)[0]))


def test_organization_and_project_headers_on_every_attempt(monkeypatch):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-loopback")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-loopback")
    app = lh.EchoApp(statuses=[500], headers=FAST_RETRY)
    with lh.Uvicorn(app) as server:
        check_echo(queries(1)[0], one(server.url, max_retries=2))
    assert len(app.requests) == 2
    for _, headers, _ in app.requests:
        assert headers.get("openai-organization") == "org-loopback"
        assert headers.get("openai-project") == "proj-loopback"
        assert headers.get("authorization") == "Bearer sk-loopback-test"


def test_retry_after_is_honoured_from_the_first_reply():
    app = lh.EchoApp(statuses=[429], headers=[("retry-after", "1")])
    with lh.Uvicorn(app) as server:
        check_echo(queries(1)[0], one(server.url, max_retries=2))
    (t0, _, _), (t1, _, _) = app.requests
    assert len(app.requests) == 2 and t1 - t0 >= 0.95, f"retried after {t1 - t0:.3f} s, Retry-After said 1 s"


def test_a_failing_request_is_sent_1_plus_max_retries_times():
    app = lh.EchoApp(statuses=[500] * 10, headers=FAST_RETRY)
    with lh.Uvicorn(app) as server:
        with pytest.raises(BackendError, match="kept failing after 2 retries"):
            one(server.url, max_retries=2)
    assert len(app.requests) == 3


def test_a_401_reaches_the_server_once():
    app = lh.EchoApp(statuses=[401] * 10)
    with lh.Uvicorn(app) as server:
        with pytest.raises(BackendError, match="rejected the API key"):
            one(server.url, max_retries=3)
    assert len(app.requests) == 1


# -- broken framing: one line, quickly --------------------------------------------------------------

BROKEN = {
    "both content-length and chunked": lambda body: (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                                     b"content-length: %d\r\ntransfer-encoding: chunked\r\n\r\n"
                                                     % len(lh.echo_completion(body))
                                                     + b"%x\r\n%s\r\n0\r\n\r\n" % (len(lh.echo_completion(body)),
                                                                                   lh.echo_completion(body))),
    "invalid content-length": lambda body: (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                            b"content-length: twelve\r\n\r\n{}"),
    "broken chunked encoding": lambda body: (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                             b"transfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    "bare LF line endings": lambda body: (b"HTTP/1.1 200 OK\ncontent-type: application/json\ncontent-length: "
                                          + str(len(lh.echo_completion(body))).encode() + b"\n\n"
                                          + lh.echo_completion(body)),
}


@pytest.mark.parametrize("fault", sorted(BROKEN))
def test_broken_framing_is_a_one_line_backend_error_or_a_correct_reply(fault):
    """A client may read a bare-LF reply (RFC 9112 allows it) or a chunked one that also has a
    Content-Length (chunked wins, RFC 9112 6.3), but never hangs till the timeout, never raises
    anything but a one-line BackendError, and never calls a framing error malformed JSON."""
    make = BROKEN[fault]

    def reply(n, body):
        return make(body) if n == 1 else None

    # the connection stays open after a reply that says where it ends; else the server closes it
    with lh.RawServer(reply, close_after=fault != "bare LF line endings") as server:
        t0 = time.perf_counter()
        try:
            result = one(server.url, max_retries=0)
        except BackendError as err:
            result = err
        elapsed = time.perf_counter() - t0
    assert elapsed < 5, f"{fault}: took {elapsed:.1f} s (the timeout is 10 s)"
    if isinstance(result, BackendError):
        assert "\n" not in str(result) and str(result).startswith(("could not", "http://127.0.0.1")), str(result)
        assert "127.0.0.1" in str(result) and "malformed JSON" not in str(result), str(result)
    else:
        assert fault in ("bare LF line endings", "both content-length and chunked"), f"{fault}: read as a reply"
        check_echo(queries(1)[0], result)


# -- where aiohttp is missing -------------------------------------------------------------------------

def test_without_aiohttp_the_sdks_httpx_client_serves_and_the_log_says_so_once(monkeypatch, caplog):
    import openai

    from vpersona.llm.backends import openai_http

    class NoAiohttp:  # what openai.DefaultAioHttpClient is when the aiohttp extra is not installed
        def __init__(self, **kwargs):
            raise RuntimeError("To use the aiohttp client you must have installed the package with the `aiohttp` extra")

    monkeypatch.setattr(openai, "DefaultAioHttpClient", NoAiohttp)
    monkeypatch.setattr(openai_http, "_said_no_aiohttp", False)
    app = lh.EchoApp()
    with lh.Uvicorn(app) as server, caplog.at_level("WARNING", logger=openai_http.__name__):
        for _ in range(2):
            backend = OpenAIBackend("m", base_url=server.url, max_concurrency=4, timeout=10)
            qs = queries(8)
            for q, reply in zip(qs, asyncio.run(ask_all(backend, qs))):
                check_echo(q, reply)
    said = [r.getMessage() for r in caplog.records if "aiohttp is not installed" in r.getMessage()]
    assert len(said) == 1 and "pip install 'openai[aiohttp]'" in said[0]
    assert len(app.peers) <= 4 * 2  # the pool limit holds here too


def test_each_event_loop_closes_its_connections_when_it_ends(caplog):
    """A notebook runs one ``asyncio.run`` per grid and never calls ``aclose``: the connections of
    each loop are closed as it ends, not left to aiohttp's "Unclosed client session" at exit."""
    import gc

    app = lh.EchoApp()
    with lh.Uvicorn(app) as server, caplog.at_level("ERROR"):
        backend = OpenAIBackend("m", base_url=server.url, timeout=10)
        for q in queries(3):
            check_echo(q, asyncio.run(backend.acomplete(q)))
        del backend
        gc.collect()
    assert not [r.getMessage() for r in caplog.records if "Unclosed" in r.getMessage()]
    assert len(app.peers) == 3  # one connection per loop
