"""``ESTIMATOR: auto`` on the config route (``vpersona run`` with the paper config, notebooks 01-02)
against a real model on a server that returns no logprobs: ``llama_cpp.server`` behind a proxy
that strips them from its replies, as Ollama's OpenAI endpoint gives none."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

from vpersona.report.config import load_config
from vpersona.report.run import notebooks, run


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HERE = Path(__file__).resolve().parent
routes = _load("routes_helpers", HERE / "test_routes.py")  # the paper route's tiny config and data
lh = _load("loopback_http", HERE.parent / "llm" / "loopback_http.py")


@pytest.mark.full
@pytest.mark.server
def test_estimator_auto_falls_back_to_sample_on_the_config_route(llama_server, tmp_path, monkeypatch):
    wvs_file, prices = routes._official_layout_file(tmp_path)
    first_two = tmp_path / "nb"
    first_two.mkdir()
    for path in notebooks()[:2]:
        shutil.copy(path, first_two / path.name)
    with lh.Uvicorn(lh.NoLogprobsApp(upstream=llama_server)) as server:
        monkeypatch.setenv("WVS7_FILE", str(wvs_file))
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", routes.SECRET)
        overrides = {**routes.TINY, "PRICE_TABLE": str(prices), "CONFIRM_COST": "true", "ESTIMATOR": "auto",
                     "TARGET_ITEMS": "[Q6, Q29]"}
        config = load_config("paper", overrides)
        declared = set().union(*(pm.inspect_notebook(str(p)) for p in first_two.glob("*.ipynb")))
        config = {**config, "parameters": {k: v for k, v in config["parameters"].items() if k in declared}}
        run_dir = run(config, "auto", output_dir=tmp_path / "out", notebook_dir=first_two, progress=False,
                      log=lambda *_: None)

    sim = json.loads((run_dir / "data" / "02_simulation.json").read_text())
    assert sim["estimator"] == "sample" and sim["estimator_requested"] == "auto"
    assert sim["run_stats"]["calls"] > 0
    warnings = json.loads((run_dir / "data" / "warnings.json").read_text())["warnings"]
    said = [w["warning"] for w in warnings if w["warning"].startswith("ESTIMATOR auto:")]
    assert len(said) == 1 and server.url in said[0] and "no token log-probabilities" in said[0]
    shown = "".join(o.get("text", "") for c in nbformat.read(run_dir / "02_simulation.ipynb", 4).cells
                    for o in c.get("outputs", []))
    assert shown.count("note: ESTIMATOR auto:") == 1
    answers = pd.read_csv(run_dir / "data" / "answers.csv")
    assert (answers["n_valid"] + answers["n_invalid"] == 20).all() and answers["n_valid"].sum() > 0
    routes._assert_no_secret(run_dir)
