"""LLM backends: each turns a :class:`~vpersona.llm.backends.base.Query` into a :class:`Reply`.

``make_backend`` builds the one a run's ``BACKEND`` parameter names: ``embedded`` (in-process
llama.cpp, offline), ``openai`` (any OpenAI-compatible server: OpenAI, vLLM, llama.cpp server) or
``simulated`` (a SIMULATED respondent with known knobs for recovery, power and teaching: not an
LLM, never a default; knobs in ``options`` = the run's ``SIMULATED`` dict).
"""
from .base import Backend, BackendError, Query, Reply  # noqa: F401

BACKENDS = ("embedded", "openai", "simulated")


def make_backend(name: str, *, model: str | None = None, base_url: str | None = None, seed: int = 0,
                 concurrency: int = 8, requests_per_minute: float | None = None,
                 options: dict | None = None) -> Backend:
    if name == "embedded":
        from .embedded import EmbeddedBackend
        return EmbeddedBackend(model_path=model, seed=seed)
    if name == "openai":
        from .openai_backend import OpenAIBackend
        if not model:
            raise ValueError("BACKEND='openai' needs MODEL (e.g. 'gpt-4o-mini' or the name your vLLM server serves)")
        return OpenAIBackend(model, base_url=base_url, max_concurrency=concurrency,
                             requests_per_minute=requests_per_minute)
    if name == "simulated":
        from .simulated import SimulatedBackend
        return SimulatedBackend(options, seed=seed)
    raise ValueError(f"BACKEND={name!r}; expected one of {list(BACKENDS)}")
