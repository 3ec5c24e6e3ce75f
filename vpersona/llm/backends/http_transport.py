"""A lean HTTP/1.1 keep-alive transport for the openai client when it talks to a plain-http server.

Why written by hand: with vLLM on the same host or LAN, the client's own CPU is the limit, and
most of it is the pure-Python HTTP machinery under the openai SDK (httpcore + h11: ~1.5 ms per
request on the benchmark machine, against ~0.05 ms here). No faster HTTP library is a dependency
of this project. The SDK stays on top, unchanged: this plugs in as an ``httpx2`` transport, so the
SDK's retries (429, 5xx, connection errors, ``retry-after``), timeouts and error classes are
exactly as with its default transport; connection failures and timeouts are raised as the
``httpx2`` exceptions the SDK expects.

Scope: ``http://`` only (the backend keeps the SDK's default transport for ``https://``), request
bodies given as bytes, responses framed by ``Content-Length``, chunked encoding or connection
close; no proxies, no compression (``accept-encoding: identity`` is sent).
"""
from __future__ import annotations

import asyncio

import httpx2


class KeepAliveTransport(httpx2.AsyncBaseTransport):
    """At most ``max_connections`` connections per event loop, kept open and reused."""

    def __init__(self, max_connections: int = 64):
        self.max_connections = int(max_connections)
        self._idle: dict[tuple[str, int], list] = {}
        self._slots: asyncio.Semaphore | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeout = request.extensions.get("timeout") or {}
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        url = request.url
        if url.scheme != "http":
            raise httpx2.UnsupportedProtocol(f"KeepAliveTransport serves http:// only, not {url.scheme}://")
        address = (url.host, url.port or 80)
        payload = _encode(request)
        await _within(self._slots.acquire(), timeout.get("pool"), httpx2.PoolTimeout, request)
        try:
            for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: once more, fresh
                reused = bool(self._idle.get(address))
                conn = self._idle[address].pop() if reused else await self._connect(address, timeout, request)
                try:
                    status, headers, body, keep = await self._exchange(conn, payload, timeout, request)
                except _StaleConnection:
                    conn[1].close()
                    if reused and attempt == 0:
                        continue
                    raise httpx2.RemoteProtocolError("server closed the connection without a response",
                                                     request=request) from None
                except BaseException:
                    conn[1].close()
                    raise
                if keep:
                    self._idle.setdefault(address, []).append(conn)
                else:
                    conn[1].close()
                return httpx2.Response(status, headers=headers, content=body, request=request,
                                       extensions={"http_version": b"HTTP/1.1"})
        finally:
            self._slots.release()
        raise AssertionError("unreachable")

    async def _connect(self, address, timeout, request):
        try:
            return await _within(asyncio.open_connection(*address, limit=2 ** 20), timeout.get("connect"),
                                 httpx2.ConnectTimeout, request)
        except OSError as exc:
            raise httpx2.ConnectError(f"{exc.strerror or exc} ({address[0]}:{address[1]})", request=request) from None

    async def _exchange(self, conn, payload: bytes, timeout: dict, request):
        reader, writer = conn
        try:
            writer.write(payload)
            await _within(writer.drain(), timeout.get("write"), httpx2.WriteTimeout, request)
            # one deadline for the whole response (asyncio.timeout: no task per read, unlike wait_for)
            return await _within(self._response(reader, request), timeout.get("read"), httpx2.ReadTimeout, request)
        except _StaleConnection:
            raise
        except (asyncio.IncompleteReadError, ConnectionError):
            raise httpx2.ReadError("connection lost while reading the response", request=request) from None

    @staticmethod
    async def _response(reader: asyncio.StreamReader, request):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise httpx2.RemoteProtocolError("truncated response head", request=request) from None
            raise _StaleConnection() from None
        lines = head[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        try:
            status = int(rest[:3])
        except ValueError:
            raise httpx2.RemoteProtocolError(f"bad status line {lines[0][:80]!r}", request=request) from None
        headers = [tuple(x.strip() for x in line.split(b":", 1)) for line in lines[1:] if b":" in line]
        fields = {k.lower(): v for k, v in headers}
        keep = version == b"HTTP/1.1" and fields.get(b"connection", b"").lower() != b"close"
        if b"content-length" in fields:
            body = await reader.readexactly(int(fields[b"content-length"]))
        elif b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            body = await _chunked(reader)
            headers = [(k, v) for k, v in headers if k.lower() != b"transfer-encoding"]
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body, keep = await reader.read(), False
        return status, headers, body, keep

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()


class _StaleConnection(Exception):
    pass


def _encode(request: httpx2.Request) -> bytes:
    body = request.content  # the SDK sends bytes; a streamed body is read here
    target = request.url.raw_path
    lines = [request.method.encode() + b" " + target + b" HTTP/1.1"]
    seen = set()
    for k, v in request.headers.raw:
        name = k.lower()
        seen.add(name)
        if name == b"accept-encoding":
            v = b"identity"  # bodies are returned as sent: no decoder needed
        lines.append(k + b": " + v)
    if b"host" not in seen:
        lines.append(b"host: " + request.url.netloc)
    if b"content-length" not in seen and (body or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"content-length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _within(awaitable, seconds, error, request):
    if seconds is None:
        return await awaitable
    try:
        if _timeout is None:  # Python 3.10
            return await asyncio.wait_for(awaitable, seconds)
        async with _timeout(seconds):
            return await awaitable
    except (TimeoutError, asyncio.TimeoutError):
        raise error(f"no progress within {seconds:g} s", request=request) from None


_timeout = getattr(asyncio, "timeout", None)  # 3.11+: a deadline without a task per read
