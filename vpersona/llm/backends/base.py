"""What every LLM backend speaks: a Query (one chat request) in, a Reply (raw answer) out.

Estimators (``vpersona.llm.estimators``) build Queries and turn Replies into answer distributions;
the grid runner (``vpersona.llm.grid``) caches Replies by ``cache_key``. Backends know nothing of
personas or items.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class BackendError(RuntimeError):
    """A permanent failure (bad key, unknown model, no logprobs...): retrying will not help."""


@dataclass(frozen=True, slots=True)  # slots: no per-instance dict for the collector to walk
class Query:
    """One chat-completion request.

    ``messages``: ``({"role": "system", ...}, {"role": "user", ...})``. ``params``: generation
    parameters as sorted ``(name, value)`` pairs (max_tokens, temperature, top_logprobs, n,
    seed, ...), so a Query is hashable and its key is stable.
    """

    messages: tuple[tuple[tuple[str, str], ...], ...]
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(cls, messages: list[dict], **params) -> "Query":
        return cls(tuple(tuple(sorted(m.items())) for m in messages), tuple(sorted(params.items())))

    @property
    def message_dicts(self) -> list[dict]:
        return [dict(m) for m in self.messages]

    @property
    def param_dict(self) -> dict:
        return dict(self.params)


@dataclass
class Reply:
    """A backend's answer. ``texts``: one per completion (n). ``top_logprobs``: for the first
    generated token, a dict token -> logprob (None when the backend gave none). ``raw``: the
    JSON-able reply as received, kept in the cache for audit."""

    texts: list[str]
    top_logprobs: dict[str, float] | None = None
    usage: dict[str, int] = field(default_factory=dict)
    raw: Any = None


@runtime_checkable
class Backend(Protocol):
    kind: str

    def identity(self) -> dict:
        """Everything about the backend that changes an answer (kind, model, base URL, model
        file hash...), for the cache key. Never contains secrets."""

    async def acomplete(self, query: Query) -> Reply:
        """Answer one query; raise BackendError for permanent failures."""


def cache_key(backend_identity: dict, query: Query, estimator: str, replicate: int = 0) -> str:
    """SHA-256 over everything that changes an answer."""
    payload = {"backend": backend_identity, "messages": query.message_dicts, "params": query.param_dict,
               "estimator": estimator, "replicate": replicate}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
