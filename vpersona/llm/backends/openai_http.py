"""The HTTP client under the OpenAI backend: the openai SDK's own aiohttp client, pooled and closed
with its event loop (no HTTP code of vpersona's: retries, proxies and headers are the SDK's)."""
from __future__ import annotations

import asyncio
import logging

import httpx2
import openai

log = logging.getLogger(__name__)

# Idle connections are closed by the client after this long: below uvicorn's (and so vLLM's) 5 s
# default keep-alive, so that the client drops an idle connection before the server does.
KEEPALIVE_S = 4.0


def sdk_http_client(max_connections: int, timeout: float):
    """The openai SDK's aiohttp client (``openai[aiohttp]``: ``DefaultAioHttpClient``), at most
    ``max_connections`` connections (aiohttp's ``TCPConnector(limit=...)``), idle ones dropped
    after ``KEEPALIVE_S``; the SDK's default httpx client where aiohttp is not installed (said
    once in the log). Proxies come from the environment (``HTTP_PROXY``, ``ALL_PROXY``,
    ``NO_PROXY``...) as with any SDK client: the httpx layer reads them and hands the proxy to
    the aiohttp transport."""
    global _said_no_aiohttp
    limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                           keepalive_expiry=KEEPALIVE_S)
    try:
        return openai.DefaultAioHttpClient(limits=limits, timeout=timeout)
    except RuntimeError:  # openai installed without its aiohttp extra
        if not _said_no_aiohttp:
            log.warning("aiohttp is not installed: the OpenAI backend uses the SDK's default httpx client, "
                        "which costs ~2-6x more CPU per request (pip install 'openai[aiohttp]')")
            _said_no_aiohttp = True
        return openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout)


_said_no_aiohttp = False
try:
    from aiohttp import ClientResponseError as _AiohttpResponseError
    PROTOCOL_ERRORS: tuple[type[Exception], ...] = (_AiohttpResponseError,)
except ImportError:
    PROTOCOL_ERRORS = ()


async def close_when_cancelled(client) -> None:
    """Holds ``client`` open until cancelled, then closes it: by ``aclose``, or by ``asyncio.run``,
    which cancels the tasks left when its coroutine returns (so a grid run in a notebook closes
    its connections with its event loop, without aiohttp's "Unclosed client session")."""
    try:
        await asyncio.Event().wait()
    finally:
        await client.close()
