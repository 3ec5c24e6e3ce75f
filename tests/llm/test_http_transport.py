"""The keep-alive transport and the fast path against a real loopback HTTP/1.1 server (stdlib
http.server): replies framed every way, connections the server drops, errors handed to the SDK."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vpersona.llm.backends.base import BackendError, Query
from vpersona.llm.backends.openai_backend import OpenAIBackend

QUERY = Query.make([{"role": "user", "content": "A or B?"}], max_tokens=1, temperature=0.0, top_logprobs=2)
COMPLETION = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "A"},
                           "logprobs": {"content": [{"token": "A", "logprob": -0.1,
                                                     "top_logprobs": [{"token": "A", "logprob": -0.1},
                                                                      {"token": "B", "logprob": -2.4}]}]}}],
              "usage": {"prompt_tokens": 7, "completion_tokens": 1}}


class Server:
    """Answers POSTs from a script of (status, framing) steps, the last repeating. framing:
    "length" (Content-Length), "chunked", "close" (body to EOF), "drop" (close, no reply),
    "slow" (wait 2 s first), "hangup" (reply, then close the connection unannounced)."""

    def __init__(self, *steps):
        self.steps, self.seen, self.connections, self.agents = list(steps), [], set(), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, json.dumps({"data": [{"id": "m"}]}).encode(), "length")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.seen.append((body, self.headers.get("authorization")))
                outer.agents.append(self.headers.get("user-agent"))
                outer.connections.add(self.client_address)
                status, framing = outer.steps[min(len(outer.seen), len(outer.steps)) - 1]
                if framing == "drop":
                    self.close_connection = True
                    return
                if framing == "slow":
                    time.sleep(2)
                payload = json.dumps(COMPLETION if status == 200 else {"error": {"message": f"status {status}"}}).encode()
                try:
                    self._send(status, payload, framing)
                except BrokenPipeError:  # the client gave up (the timeout test)
                    self.close_connection = True

            def _send(self, status, payload, framing):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("retry-after-ms", "1")
                if framing == "chunked":
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for part in (payload[:10], payload[10:]):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                elif framing == "hangup":  # a complete reply, then the server closes the idle connection
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.close_connection = True
                elif framing == "close":
                    self.send_header("connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)
                    self.close_connection = True
                else:
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def ask(url, n=1, **kwargs):
    backend = OpenAIBackend("m", base_url=url, max_retries=2, **kwargs)

    async def go():
        try:
            return [await backend.acomplete(QUERY) for _ in range(n)]
        finally:
            await backend.aclose()

    return asyncio.run(go())


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_every_response_framing_is_read(framing):
    with Server((200, framing)) as s:
        replies = ask(s.url, n=3)
    assert [r.top_logprobs for r in replies] == [{"A": -0.1, "B": -2.4}] * 3
    assert len(s.seen) == 3 and s.seen[0][1] == "Bearer sk-local-test"
    assert s.seen[0][0]["logprobs"] is True and s.seen[0][0]["top_logprobs"] == 2


def test_connections_are_kept_alive():
    with Server((200, "length")) as s:
        ask(s.url, n=5)
    assert len(s.connections) == 1


def test_fast_path_failure_goes_to_the_sdk_which_retries():
    with Server((500, "length"), (503, "length"), (200, "length")) as s:
        (reply,) = ask(s.url)
    assert reply.texts == ["A"] and len(s.seen) == 3  # fast attempt, then the SDK: 503, retry 200


def test_persistent_errors_end_in_the_sdks_error_after_its_retries():
    with Server((500, "length")) as s:
        with pytest.raises(BackendError, match="kept failing after 2 retries"):
            ask(s.url)
    assert len(s.seen) == 1 + 3  # the fast attempt + the SDK's 1 + max_retries


def test_a_connection_the_server_dropped_is_replaced():
    with Server((200, "length"), (200, "drop"), (200, "length")) as s:
        replies = ask(s.url, n=2)
    assert len(replies) == 2 and len(s.seen) == 3


def test_an_idle_connection_closed_by_the_server_is_replaced_without_the_sdk():
    with Server((200, "hangup")) as s:
        replies = ask(s.url, n=3)
    assert len(replies) == 3 and len(s.seen) == 3 and len(s.connections) == 3
    assert all(a.startswith("vpersona") for a in s.agents)  # the fast path reconnected by itself


def test_read_timeout_is_the_sdks_timeout_error():
    with Server((200, "slow")) as s:
        with pytest.raises(BackendError, match="no reply within timeout=0.3s"):
            ask(s.url, timeout=0.3)
