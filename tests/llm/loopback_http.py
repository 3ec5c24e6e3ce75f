"""Real HTTP servers on loopback for the OpenAI backend's transport tests, started and stopped
by the tests: uvicorn (the server vLLM runs) with an ASGI chat endpoint, a raw asyncio HTTP/1.1
server for what uvicorn cannot send (1xx interim responses, broken framing), and a forwarding
HTTP proxy. Every chat reply names the request it answers (``identity``), so a test can check
each answer against its own request. Each server runs its own event loop in a daemon thread.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time

import uvicorn

from vpersona.llm.local_server import free_loopback_port

MODELS = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()


def identity(body: dict) -> str:
    """What names a request: a hash of its messages and parameters (everything but the model)."""
    blob = json.dumps({k: v for k, v in body.items() if k != "model"}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def expected_top(ident: str) -> dict[str, float]:
    """The top logprobs the echo servers return for a request of this identity."""
    a = -int(ident[:4], 16) / 65536 * 3  # in (-3, 0]
    return {"A": a, "B": a - 1.0 - int(ident[4:6], 16) / 256}


def echo_completion(body: dict) -> bytes:
    ident = identity(body)
    top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in expected_top(ident).items()]
    return json.dumps({"id": f"chatcmpl-{ident}", "object": "chat.completion", "created": 0, "model": body["model"],
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "A"},
                                    "finish_reason": "length",
                                    "logprobs": {"content": [{"token": "A", "logprob": top[0]["logprob"],
                                                              "bytes": None, "top_logprobs": top}]}}],
                       "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21}}).encode()


def error_body(status: int) -> bytes:
    return json.dumps({"error": {"message": f"scripted status {status}", "type": "server_error",
                                 "param": None, "code": None}}).encode()


class _Threaded:
    """An asyncio server run in its own thread and loop: ``start()``, ``stop()``, reusable."""

    port: int

    def start(self):
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def _run(self):
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._serve())

    async def _serve(self):
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", self.port, reuse_address=True)
        self._tasks = set()
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(self._tasks):  # a real restart drops every connection
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    def stop(self):
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    async def _connection(self, reader, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


async def read_request(reader) -> tuple[list[bytes], dict[bytes, bytes], bytes]:
    """One HTTP/1.1 request with a Content-Length body: (request line parts, headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines[1:])}
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return lines[0].split(b" "), headers, body


def response(status: int, body: bytes, reason: str = "OK", extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            .encode() + extra + b"\r\n" + body)


class RawServer(_Threaded):
    """A bare asyncio HTTP/1.1 keep-alive server. ``reply(n, body) -> bytes | None`` gives the raw
    bytes answering the n-th chat request (None: close the connection unanswered); by default the
    echo completion, after a random delay up to ``max_delay`` s (so replies finish out of order).
    ``close_after``: close the connection after each reply."""

    def __init__(self, reply=None, max_delay: float = 0.0, seed: int = 0, close_after: bool = False):
        self.port = free_loopback_port()
        self.close_after = close_after
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.reply = reply or (lambda n, body: response(200, echo_completion(body)))
        self.max_delay, self.rng = max_delay, random.Random(seed)
        self.requests, self.peers = [], set()

    async def handle(self, reader, writer):
        self.peers.add(writer.get_extra_info("peername"))
        while True:
            (method, *_), headers, raw = await read_request(reader)
            if method == b"GET":
                writer.write(response(200, MODELS))
                continue
            body = json.loads(raw)
            self.requests.append((headers, body))
            if self.max_delay:
                await asyncio.sleep(self.rng.uniform(0, self.max_delay))
            out = self.reply(len(self.requests), body)
            if out is None:
                return
            writer.write(out)
            await writer.drain()
            if self.close_after:
                return


class ForwardProxy(_Threaded):
    """An HTTP forward proxy: takes absolute-form requests (``POST http://host/path``), records
    them, and forwards each over a fresh connection to ``routes[host]`` (a loopback address), so
    the hosts in ``routes`` are reachable only through this proxy."""

    def __init__(self, routes: dict[str, tuple[str, int]]):
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.routes, self.seen = routes, []

    async def handle(self, reader, writer):
        while True:
            (method, target, _), headers, body = await read_request(reader)
            self.seen.append((method.decode(), target.decode()))
            scheme, _, rest = target.decode().partition("://")
            host, _, path = rest.partition("/")
            if scheme != "http" or host not in self.routes:
                writer.write(response(502, b'{"error": {"message": "proxy: no route"}}', "Bad Gateway"))
                continue
            up_reader, up_writer = await asyncio.open_connection(*self.routes[host])
            fields = b"".join(k + b": " + v + b"\r\n" for k, v in headers.items()
                              if k not in (b"connection", b"proxy-connection", b"keep-alive"))
            up_writer.write(method + b" /" + path.encode() + b" HTTP/1.1\r\n" + fields + b"connection: close\r\n\r\n" + body)
            head = await up_reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.lower().split(b"\r\n")
                          if line.startswith(b"content-length:"))
            writer.write(head + await up_reader.readexactly(length))
            up_writer.close()
            await writer.drain()


async def _asgi_body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


class EchoApp:
    """ASGI app: ``GET /v1/models`` and ``POST /v1/chat/completions`` answering the echo
    completion. ``statuses``: the HTTP statuses of the first chat replies (error bodies, with
    ``headers``), then 200s. Records every chat request's arrival time and headers."""

    def __init__(self, statuses=(), headers=()):
        self.statuses, self.headers = list(statuses), [(k.encode(), v.encode()) for k, v in headers]
        self.requests: list[tuple[float, dict[str, str], dict]] = []
        self.peers: set = set()

    async def __call__(self, scope, receive, send):
        raw = await _asgi_body(receive)
        status, extra, body = 200, [], MODELS
        if scope["method"] == "POST":
            request = json.loads(raw)
            self.requests.append((time.monotonic(), {k.decode(): v.decode() for k, v in scope["headers"]}, request))
            self.peers.add(tuple(scope["client"]))
            n = len(self.requests)
            status = self.statuses[n - 1] if n <= len(self.statuses) else 200
            body, extra = (echo_completion(request), []) if status == 200 else (error_body(status), self.headers)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")] + extra})
        await send({"type": "http.response.body", "body": body})


class Uvicorn:
    """uvicorn serving ``app`` on loopback in a thread, keep-alive timeout ``keep_alive`` s (vLLM's
    default is 5); ``stop()`` then ``start()`` restarts it on the same port."""

    def __init__(self, app, keep_alive: float = 5):
        self.app, self.keep_alive = app, keep_alive
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def start(self):
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, timeout_keep_alive=self.keep_alive,
                                lifespan="off", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class NoLogprobsApp:
    """ASGI app for servers without logprobs: by default answers like Ollama's OpenAI endpoint
    (no ``logprobs`` in the reply, one choice whatever ``n``, a label drawn from the request's
    seed); ``refuse=True``: like vLLM started with ``--max-logprobs 5`` (HTTP 400 for more);
    ``upstream``: forwards every request to that base URL (a real ``llama_cpp.server``) and strips
    the logprobs from its replies. Records every chat request body."""

    def __init__(self, refuse: bool = False, upstream: str | None = None):
        self.refuse, self.upstream, self.requests = refuse, upstream, []

    async def __call__(self, scope, receive, send):
        raw = await _asgi_body(receive)
        status, body = 200, MODELS
        if scope["method"] == "POST":
            request = json.loads(raw)
            self.requests.append(request)
            if self.refuse and (request.get("top_logprobs") or 0) > 5:
                status, body = 400, json.dumps({"object": "error", "message": "Requested sample logprobs of "
                                                f"{request['top_logprobs']}, which is greater than max allowed: 5",
                                                "type": "BadRequestError", "code": 400}).encode()
            else:
                body = json.dumps(await self._answer(request)).encode()
        elif self.upstream:
            body = await asyncio.to_thread(_get, f"{self.upstream}/models")
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, request: dict) -> dict:
        if self.upstream:
            reply = json.loads(await asyncio.to_thread(_post, f"{self.upstream}/chat/completions", request))
        else:
            label = random.Random(f"{identity(request)}").choice("AB")
            reply = {"id": "chatcmpl-nolp", "object": "chat.completion", "created": 0, "model": request["model"],
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": label},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21}}
        for choice in reply.get("choices", []):
            choice.pop("logprobs", None)
        return reply


def _get(url: str) -> bytes:
    import urllib.request
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def _post(url: str, body: dict) -> bytes:
    import urllib.request
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()
