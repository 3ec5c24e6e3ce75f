"""Any OpenAI-compatible chat endpoint as a Backend: OpenAI, vLLM, Ollama, LM Studio, llama.cpp.

The model answers through ``/v1/chat/completions``. The ``openai`` client does the transport (its
aiohttp client, :func:`sdk_http_client`, for ``http://`` and ``https://`` alike), its own retries
(429, 5xx, connection errors, honouring ``retry-after``; never a 401), timeouts, proxies from the
environment and organisation/project headers (``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``); this module
adds a concurrency limit, a request-rate limit, and turns permanent failures (bad key, unknown
model, no logprobs, context too long) into a :class:`BackendError` that says what to change.

Secrets: the API key is read from the environment (``OPENAI_API_KEY`` by default) and handed to
the client only. It is not part of :meth:`OpenAIBackend.identity` (the cache key), the repr, log
lines or error messages (which are scrubbed of it).

:func:`request_body` and :func:`reply_from_completion` are shared with the Batch path
(``vpersona.llm.batch``), so a Batch request is byte-for-byte the request a live run would send.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
from urllib.parse import urlsplit, urlunsplit

import httpx2
import numpy as np
import openai

from .base import BackendError, Query, Reply
from .openai_http import PROTOCOL_ERRORS, close_when_cancelled, sdk_http_client

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "EMPTY"  # what vLLM/llama.cpp/Ollama accept when they run without auth
# Request fields that make llama_cpp.server sample from the full distribution, like the embedded
# backend (its defaults: top_k=40, min_p=0.05, repeat_penalty=1.1).
LLAMA_CPP_PLAIN_SAMPLING = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
JSON_HEADERS = {"headers": {"Content-Type": "application/json"}}
RESPONSE_TYPES = (httpx2.Response,)  # the SDK returns the raw response for this cast_to, whichever httpx
SAMPLE_HINT = ("use estimator='sample' (parses n sampled answers) with this model or server, or ESTIMATOR: "
               "auto, which falls back to it where a server returns no logprobs")


class RequestRateLimiter:
    """Spaces request starts at least ``60 / requests_per_minute`` seconds apart.

    Asynchronous (``await limiter.acquire()``): waiting requests sleep on the event loop, other
    work goes on. ``None`` means no limit.
    """

    def __init__(self, requests_per_minute: float | None):
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute={requests_per_minute!r}: expected a positive number or None")
        self.interval = 0.0 if requests_per_minute is None else 60.0 / requests_per_minute
        self._next_start = -math.inf

    async def acquire(self) -> None:
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        start = max(now, self._next_start)  # no await before this update: atomic on the loop
        self._next_start = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


class NoLogprobs(BackendError):
    """The server returns no token log-probabilities (none in the reply, or the request refused):
    ``reason``, then the hint at the sample estimator."""

    def __init__(self, reason: str):
        super().__init__(f"{reason}; {SAMPLE_HINT}")
        self.reason = reason


def request_body(model: str, query: Query, extra_body: dict | None = None) -> dict:
    """The JSON body of ``POST /v1/chat/completions`` for ``query`` (also a Batch line's body).

    Asking for ``top_logprobs`` implies ``logprobs: true``, as the API requires. ``extra_body``:
    server-specific fields added as they are (the query's own parameters win).
    """
    body = {"model": model, "messages": query.message_dicts, **(extra_body or {}), **query.param_dict}
    if body.get("top_logprobs") is not None:
        body["logprobs"] = True
    return body


def reply_from_completion(completion: dict, *, want_logprobs: bool, source: str) -> Reply:
    """Turn a chat-completion JSON object into a :class:`Reply`.

    ``top_logprobs`` come from ``choices[0].logprobs.content[0].top_logprobs``; token strings that
    occur twice (distinct token ids decoding to the same text) are merged by adding probabilities.
    ``source`` names where the reply came from, for error messages. Raises BackendError when the
    object is not a chat completion, or when logprobs were asked for and none came back.
    """
    choices = completion.get("choices") if isinstance(completion, dict) else None
    if not isinstance(choices, list) or not choices:
        raise BackendError(f"{source}: the reply is not a chat completion (no 'choices'): "
                           f"{_shorten(json.dumps(completion, default=str))}")
    texts = []
    for choice in choices:
        message = choice.get("message") or {}
        # OpenAI puts a structured refusal in message.refusal with content null: keep its text,
        # so the estimator records it as an unparseable/refused answer instead of an empty one.
        texts.append(message.get("content") or message.get("refusal") or "")
    top = _first_token_top_logprobs(choices[0])
    if want_logprobs and top is None:
        raise NoLogprobs(f"{source}: logprobs were requested but the reply has none "
                         f"(choices[0].logprobs.content is empty): this model or server does not "
                         f"return token log-probabilities for chat completions")
    usage = _flat_usage(completion.get("usage") or {})
    return Reply(texts=texts, top_logprobs=top, usage=usage, raw=completion)


def _flat_usage(usage: dict) -> dict[str, int]:
    """Integer token counts; ``prompt_tokens_details.cached_tokens`` (prompt-cache hits, billed
    cheaper by OpenAI) becomes ``cached_prompt_tokens``."""
    flat = {k: int(v) for k, v in usage.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if isinstance(cached, int) and cached:
        flat["cached_prompt_tokens"] = cached
    return flat


def _first_token_top_logprobs(choice: dict) -> dict[str, float] | None:
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    first = content[0]
    entries = first.get("top_logprobs") or [{"token": first.get("token"), "logprob": first.get("logprob")}]
    merged: dict[str, float] = {}
    for entry in entries:
        token, logprob = entry.get("token"), entry.get("logprob")
        if token is None or logprob is None:
            continue
        merged[token] = float(logprob) if token not in merged else float(np.logaddexp(merged[token], float(logprob)))
    return merged or None


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server.

    ``model``: the model name the server knows (``gpt-4o-mini``, the name given to ``vllm
    serve``...). ``base_url``: default ``$OPENAI_BASE_URL``, else OpenAI's API. The key comes from
    the environment variable ``api_key_env``; when it is unset and a ``base_url`` is set (a local
    server without auth) a placeholder is sent. ``max_concurrency``: requests in flight at once.
    ``requests_per_minute``: request-start rate limit (None: none). ``timeout``/``max_retries``:
    per request, handled by the ``openai`` client (exponential backoff, ``retry-after`` honoured).
    ``http_client``: an ``httpx.AsyncClient`` to use instead of :func:`sdk_http_client` (tests).
    ``extra_body``: server-specific request fields, part of the identity (they change answers).
    For ``llama_cpp.server`` use ``LLAMA_CPP_PLAIN_SAMPLING`` so that ``sample`` draws from the
    model's full distribution (its defaults truncate it: top_k=40, min_p=0.05, repeat_penalty).
    OpenAI itself rejects unknown fields.

    Servers that ignore ``n`` (llama.cpp server, Ollama) return one choice: the backend then tops
    up with single-completion requests, with ``seed + i`` when a seed is given, so that the ``n``
    answers are distinct draws.
    """

    kind = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 16, requests_per_minute: float | None = None,
                 timeout: float = 60.0, max_retries: int = 5, http_client=None, extra_body: dict | None = None):
        if not model or not isinstance(model, str):
            raise ValueError(f"model={model!r}: expected the model name the server knows, e.g. 'gpt-4o-mini'")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency!r}: expected an integer >= 1")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env)
        if not key:
            if self.base_url == DEFAULT_BASE_URL:
                raise BackendError(f"no API key: set the environment variable {api_key_env} (or set "
                                   f"OPENAI_BASE_URL / base_url for a local server without auth)")
            key = PLACEHOLDER_KEY
        self._api_key = key
        self.max_concurrency = int(max_concurrency)
        self.requests_per_minute = requests_per_minute
        RequestRateLimiter(requests_per_minute)  # validate now, not at the first request
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self._http_client = http_client
        self.extra_body = dict(extra_body or {})
        for reserved in ("model", "messages"):
            if reserved in self.extra_body:
                raise ValueError(f"extra_body may not set {reserved!r}; it comes from the backend and the query")
        self._loop = None
        self._warned_n = False

    def __repr__(self) -> str:
        return (f"OpenAIBackend(model={self.model!r}, base_url={_public_url(self.base_url)!r}, "
                f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency}, "
                f"requests_per_minute={self.requests_per_minute!r})")

    def identity(self) -> dict:
        """Kind, model, base URL (without credentials or query string) and extra body fields if
        any: the cache-key part."""
        identity = {"kind": self.kind, "model": self.model, "base_url": _public_url(self.base_url)}
        if self.extra_body:
            identity["extra_body"] = dict(sorted(self.extra_body.items()))
        return identity

    # -- per event loop state: an AsyncOpenAI client, a semaphore and a rate limiter ----------
    def _session(self):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # asyncio objects and pooled connections belong to one loop
            self._loop = loop
            self._client = openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url,
                                              timeout=self.timeout, max_retries=self.max_retries,
                                              http_client=self._http_client or sdk_http_client(self.max_concurrency,
                                                                                               self.timeout))
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._limiter = RequestRateLimiter(self.requests_per_minute)
            # a client made here is closed with its loop; one passed in stays open for the next loop
            self._closer = None if self._http_client else loop.create_task(close_when_cancelled(self._client))
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP connections of the current event loop's client (``asyncio.run`` also
        does, when it ends: it cancels the task that holds them, see close_when_cancelled)."""
        if self._loop is asyncio.get_running_loop():
            if self._closer is None:
                await self._client.close()
            else:
                self._closer.cancel()
                await asyncio.gather(self._closer, return_exceptions=True)
            self._loop = None

    async def acomplete(self, query: Query) -> Reply:
        body = request_body(self.model, query, self.extra_body)
        reply = await self._post(body)
        wanted = int(body.get("n") or 1)
        missing = wanted - len(reply.texts)
        if missing > 0:
            reply = await self._top_up(body, reply, missing)
        return reply

    async def _top_up(self, body: dict, first: Reply, missing: int) -> Reply:
        if not self._warned_n:
            log.warning("%s returned %d of n=%s choices (the server ignores 'n'): topping up with "
                        "single requests", _public_url(self.base_url), len(first.texts), body.get("n"))
            self._warned_n = True
        extra_bodies = []
        for i in range(1, missing + 1):
            extra = {**body, "n": 1}
            if body.get("seed") is not None:
                extra["seed"] = int(body["seed"]) + i
            extra_bodies.append(extra)
        extras = await asyncio.gather(*(self._post(b) for b in extra_bodies))
        usage = dict(first.usage)
        for r in extras:
            for k, v in r.usage.items():
                usage[k] = usage.get(k, 0) + v
        return Reply(texts=first.texts + [t for r in extras for t in r.texts[:1]],
                     top_logprobs=first.top_logprobs, usage=usage,
                     raw={"responses": [first.raw] + [r.raw for r in extras]})

    async def _post(self, body: dict) -> Reply:
        client = self._session()
        async with self._semaphore:
            await self._limiter.acquire()
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            try:
                # The SDK's low-level post: its retries, timeouts and error classes, without
                # validating and re-serialising the parameters (`create` costs ~3x the CPU).
                # The JSON sent is exactly `body`; the reply is parsed once, below.
                response = await client.post("/chat/completions", cast_to=RESPONSE_TYPES[0], content=content,
                                             options=JSON_HEADERS)
            except openai.APIError as exc:
                raise await self._explain(exc, body) from None
            except PROTOCOL_ERRORS as exc:  # aiohttp's parser error, which the SDK's adapter passes on unmapped
                first_line = str(getattr(exc, "message", exc)).strip().splitlines()[0].rstrip(":")
                raise BackendError(f"{_public_url(self.base_url)}: the reply is not valid HTTP/1.1 ({first_line}): "
                                   f"check that this address serves the OpenAI API (and any proxy on the "
                                   f"way passes replies on intact)") from None
        where = f"{_public_url(self.base_url)} (model {self.model!r})"
        try:
            completion = json.loads(response.content)
        except ValueError:
            raise BackendError(f"{where}: the server returned a malformed JSON body (HTTP "
                               f"{response.status_code}): {self._redact(_shorten(response.text))}") from None
        return reply_from_completion(completion, want_logprobs=bool(body.get("logprobs")), source=where)

    async def _explain(self, exc: openai.APIError, body: dict) -> BackendError:
        """A BackendError naming the cause and the fix; never contains the API key."""
        url = _public_url(self.base_url)
        detail = self._redact(_error_text(exc))
        retried = f"after {self.max_retries} retries"
        if isinstance(exc, openai.AuthenticationError):
            msg = (f"{url} rejected the API key taken from ${self.api_key_env} (HTTP 401): {detail}. "
                   f"Check that the variable holds a valid key for this server")
        elif isinstance(exc, openai.PermissionDeniedError):
            msg = f"{url} refused access to model {self.model!r} with this key (HTTP 403): {detail}"
        elif isinstance(exc, openai.NotFoundError):
            available = await self._available_models()
            listing = (f"models the server lists: {available}" if available else
                       "the server did not list its models (check that base_url ends with /v1)")
            msg = f"model {self.model!r} or {url}/chat/completions not found (HTTP 404): {detail}; {listing}"
        elif isinstance(exc, openai.BadRequestError) and _is_context_error(exc, detail):
            msg = (f"{url}: the prompt does not fit the context window of model {self.model!r} "
                   f"(HTTP 400): {detail}. Shorten the persona or start the server with a larger context")
        elif isinstance(exc, openai.BadRequestError) and body.get("logprobs") and "logprob" in detail.lower():
            return NoLogprobs(f"{url} refused the logprobs request (HTTP 400): {detail}. The model may not support "
                              f"logprobs, or top_logprobs={body.get('top_logprobs')} exceeds the server's limit "
                              f"(vLLM: start it with --max-logprobs 20)")
        elif isinstance(exc, openai.RateLimitError):
            msg = (f"{url} still rate-limits model {self.model!r} {retried} (HTTP 429): {detail}. "
                   f"Lower requests_per_minute / max_concurrency, or check the account's quota")
        elif isinstance(exc, openai.APITimeoutError) and _timed_out(exc):
            msg = (f"{url} gave no reply within timeout={self.timeout:g}s, {retried}. Is the server "
                   f"overloaded? Raise timeout or lower max_concurrency")
        elif isinstance(exc, openai.APIConnectionError):  # APITimeoutError is one: a refused connection here
            cause = _root_cause(exc)  # what the HTTP client saw: refused, reset, unreachable proxy...
            why = f"{type(cause).__name__}: {self._redact(_shorten(str(cause)))}" if cause is not exc else detail.rstrip(".")
            msg = f"could not connect to {url} {retried} ({why}). Is the server running at that address?"
        elif isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
            msg = (f"{url} kept failing {retried} (HTTP {exc.status_code}): {detail}. Answers already "
                   f"cached are kept: rerun to resume")
        elif isinstance(exc, openai.APIStatusError):
            msg = f"{url} rejected the request for model {self.model!r} (HTTP {exc.status_code}): {detail}"
        else:
            msg = f"{url}: {type(exc).__name__}: {detail}"
        return BackendError(msg)

    async def probe_logprobs(self, top_logprobs: int = 20) -> str | None:
        """None when the server returns ``top_logprobs`` token log-probabilities for a chat
        completion, else the reason it does not (one request for one token, not cached). Other
        failures (bad key, unknown model, no server) raise as in a run."""
        query = Query.make([{"role": "user", "content": "Answer with one letter, A or B."}], max_tokens=1,
                           temperature=0.0, logprobs=True, top_logprobs=int(top_logprobs))
        try:
            await self.acomplete(query)
        except NoLogprobs as err:
            return err.reason
        return None

    async def _available_models(self) -> list[str]:
        try:
            page = await self._session().with_options(max_retries=0).models.list()
            return sorted(m.id for m in page.data)[:30]
        except Exception:  # the listing is only a hint; its failure must not hide the real error
            return []

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key != PLACEHOLDER_KEY:
            text = text.replace(self._api_key, "***")
        text = re.sub(r"(?i)bearer\s+\S+", "Bearer ***", text)
        return re.sub(r"sk-[A-Za-z0-9_\-*]{3,}", "sk-***", text)


def _error_text(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return _shorten(str(inner["message"]))
        if isinstance(body.get("detail"), str):  # FastAPI-style servers (llama.cpp server)
            return _shorten(body["detail"])
    return _shorten(getattr(exc, "message", None) or str(exc))


def _timed_out(exc: BaseException) -> bool:
    """Whether the SDK's timeout error is one: its aiohttp adapter maps a refused connection
    (aiohttp's ClientConnectorError, an OSError) to ConnectTimeout too."""
    root = _root_cause(exc)
    return isinstance(root, TimeoutError) or not isinstance(root, OSError)


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _is_context_error(exc: openai.APIError, detail: str) -> bool:
    code = getattr(exc, "code", None)
    text = detail.lower()
    return code == "context_length_exceeded" or "context length" in text or "context window" in text


def _public_url(url: str) -> str:
    """``url`` without user:password, query string or fragment (they may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."
