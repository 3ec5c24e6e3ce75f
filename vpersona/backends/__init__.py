"""LLM backends: each turns a :class:`~vpersona.backends.base.Query` into a :class:`Reply`."""
from .base import Backend, Query, Reply, BackendError  # noqa: F401
