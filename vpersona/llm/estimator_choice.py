"""``ESTIMATOR: auto``: the ``logprobs`` estimator where the backend returns token
log-probabilities, else the ``sample`` estimator, and a sentence saying so.

Ollama and some OpenAI-compatible servers return no logprobs for chat completions (or refuse the
request for them). With ``ESTIMATOR: logprobs`` such a server stops the run at its first reply
with an error naming the fix; with ``auto`` one probe request (one token, not cached) asks the
server before the grid starts, and the run goes on with ``sample`` (``n`` completions per
prompt, parsed for a leading label), never silently: the caller gets the note to show.
"""
from __future__ import annotations

from vpersona.llm.backends.base import Backend
from vpersona.llm.querying import run_coroutine

AUTO = "auto"


def choose_estimator(requested: str, backend: Backend, top_logprobs: int = 20) -> tuple[str, str | None]:
    """``(estimator, note)``: ``requested`` itself unless it is ``"auto"``; for ``"auto"``,
    ``"logprobs"`` when the backend returns them (the embedded and simulated backends always
    do; an OpenAI-compatible server is asked once) and ``note`` None, else ``"sample"`` and a
    note naming the server and what it answered."""
    if requested != AUTO:
        return requested, None
    probe = getattr(backend, "probe_logprobs", None)
    why = None if probe is None else run_coroutine(probe(top_logprobs))
    if why is None:
        return "logprobs", None
    url = backend.identity().get("base_url", backend.kind)
    return "sample", (f"ESTIMATOR auto: {url} returns no token log-probabilities, so this run uses the "
                      f"sample estimator (n completions per prompt, each parsed for its label) instead of "
                      f"logprobs; CONTEXTUAL does not apply to it. The server's reply: {why}")
