"""Routes the README and configs advertise, through the real notebooks: every SPLIT through 03 and
04 (held-out cells disjoint from fitted ones), and the paper route end to end through the OpenAI
backend against the loopback llama_cpp.server."""
from __future__ import annotations

import json
import shutil

import nbformat
import pandas as pd
import papermill as pm
import pytest

from vpersona.calibrate.splits import make_split
from vpersona.report.config import load_config
from vpersona.report.run import RunFailed, notebooks, run

SECRET = "sk-vpersona-routes-SECRET-7d1e0a"


def _execute(path, run_dir, params):
    declared = pm.inspect_notebook(str(path))
    pm.execute_notebook(str(path), str(run_dir / path.name), cwd=str(run_dir), progress_bar=False,
                        kernel_name="python3", parameters={**{k: v for k, v in params.items() if k in declared},
                                                           "RUN_DIR": str(run_dir)})


@pytest.fixture(scope="module")
def split_runs(tmp_path_factory):
    """Notebooks 01-02 once on the smoke config, then the run folder copied per SPLIT and 03-04
    run on each copy (the LLM answers are the same for the three)."""
    root = tmp_path_factory.mktemp("splits")
    first_two = root / "nb"
    first_two.mkdir()
    for path in notebooks()[:2]:
        shutil.copy(path, first_two / path.name)
    config = load_config("smoke")
    declared = set().union(*(pm.inspect_notebook(str(p)) for p in first_two.glob("*.ipynb")))
    early = {**config, "parameters": {k: v for k, v in config["parameters"].items() if k in declared}}
    base = run(early, "base", output_dir=root, notebook_dir=first_two, progress=False, log=lambda *_: None)
    runs = {}
    for split in ("items", "countries", "both"):
        run_dir = root / f"split-{split}"
        shutil.copytree(base, run_dir)
        for path in notebooks()[2:]:
            _execute(path, run_dir, {**config["parameters"], "SPLIT": split})
        runs[split] = run_dir
    return config, runs


@pytest.mark.full
@pytest.mark.parametrize("split", ["items", "countries", "both"])
def test_every_split_holds_out_what_it_says(split_runs, split):
    config, runs = split_runs
    run_dir = runs[split]
    recorded = json.loads((run_dir / "data" / "03_calibration.json").read_text())
    assert recorded["split"] == split
    pred = pd.read_csv(run_dir / "tables" / "03_predictions.csv")
    params = pd.read_csv(run_dir / "tables" / "03_calibration_params.csv")
    calibrated = pred[pred["method"].str.endswith("+T")]
    assert len(calibrated) > 0
    for method, cells in calibrated.groupby("method"):
        kind = method[:-2]
        base = pred[pred["method"] == kind]
        folds = list(make_split(split, recorded["k_folds"], base, seed=recorded["seed"]).split(base))
        mine = params[params["method"] == kind].sort_values("fold")
        # the folds the notebook fitted are these (fold column and cell counts of 03_calibration_params)
        assert list(mine["fold"]) == list(range(len(folds)))
        assert list(mine["n_fit_cells"]) == [len(f) for f, _ in folds]
        assert list(mine["n_test_cells"]) == [len(t) for _, t in folds]
        tested = set()
        for fit, test in folds:
            fit_cells, test_cells = set(map(tuple, fit.to_numpy())), set(map(tuple, test.to_numpy()))
            assert test_cells and fit_cells and not fit_cells & test_cells
            if split in ("items", "both"):
                assert not set(fit["item"]) & set(test["item"]), "a held-out item was fitted on"
            if split in ("countries", "both"):
                assert not set(fit["country"]) & set(test["country"]), "a held-out country was fitted on"
            assert not tested & test_cells
            tested |= test_cells
        assert tested == set(map(tuple, cells[["country", "item"]].to_numpy())), method
    summary = json.loads((run_dir / "summary.json").read_text())
    assert any(m.endswith("+T") for m in summary["methods"])


def _official_layout_file(tmp_path):
    from vpersona.report.cli import main as cli_main
    wvs_file = tmp_path / "WVS_like.csv.gz"
    assert cli_main(["synthesize", "--countries", "AUS", "NGA", "JPN", "--n", "150", "--seed", "5",
                     "--out", str(wvs_file)]) == 0
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  smollm2-135m: {input: 0.5, output: 1.0}\n")
    return wvs_file, prices


TINY = {"MODEL": "smollm2-135m", "N_PERSONAS": "2", "PERSONA_KINDS": "[none, value]",
        "TARGET_ITEMS": "[Q6, Q29, Q150]", "N_BOOT": "50", "N_DRAWS": "5", "CONCURRENCY": "2",
        "POWER_MODEL": "smollm2-135m", "POWER_SIZES": "[2]", "POWER_N_SIM": "2"}


@pytest.mark.full
@pytest.mark.server
def test_paper_route_end_to_end_through_the_openai_backend(llama_server, tmp_path, monkeypatch):
    wvs_file, prices = _official_layout_file(tmp_path)
    monkeypatch.setenv("WVS7_FILE", str(wvs_file))
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # read by the openai SDK: every request carries it
    config = load_config("paper", {**TINY, "PRICE_TABLE": str(prices), "CONFIRM_COST": "true"})
    run_dir = run(config, "paper-e2e", output_dir=tmp_path / "out", progress=False, log=lambda *_: None)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["synthetic"] is False and summary["n_countries"] == 3 and summary["n_items"] == 3
    assert {"none", "value", "value+T", "regression", "uniform"} <= set(summary["methods"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    sim = manifest["recorded"]["02_simulation"]
    assert sim["backend"]["kind"] == "openai" and sim["run_stats"]["calls"] > 0
    assert sim["cost"]["total_usd"] > 0
    assert manifest["recorded"]["01_data"]["human_targets"] == "respondents"
    assert manifest["recorded"]["03_calibration"]["split"] == "both"
    assert json.loads((run_dir / "run.json").read_text())["complete"] is True
    _assert_no_secret(run_dir)


def _assert_no_secret(run_dir):
    checked = 0
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".json", ".csv", ".txt", ".md", ".gz"):
            data = path.read_bytes()
            if path.suffix == ".gz":
                import gzip
                data = gzip.decompress(data)
            assert SECRET.encode() not in data, f"secret leaked into {path}"
            checked += 1
    assert checked >= 5


@pytest.mark.full
def test_paper_route_stops_before_any_request_without_confirmation(tmp_path, monkeypatch):
    wvs_file, prices = _official_layout_file(tmp_path)
    monkeypatch.setenv("WVS7_FILE", str(wvs_file))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens: a request would fail
    config = load_config("paper", {**TINY, "PRICE_TABLE": str(prices)})
    assert config["parameters"]["CONFIRM_COST"] is False
    with pytest.raises(RunFailed, match=r"02_simulation\.ipynb failed in cell \d+ \(CostNotConfirmed: .*nothing was sent"):
        run(config, "paper-gate", output_dir=tmp_path / "out", progress=False, log=lambda *_: None)
    run_dir = tmp_path / "out" / "paper-gate"
    assert not (run_dir / "data" / "answers.csv").exists()
    status = json.loads((run_dir / "run.json").read_text())["status"]
    assert status["01_data_prep.ipynb"] == "completed" and status["02_simulation.ipynb"] == "failed"
    assert status["03_calibration.ipynb"] == "not run"
    text = "".join(str(o) for c in nbformat.read(run_dir / "02_simulation.ipynb", 4).cells for o in c.get("outputs", []))
    assert "cost estimate before any request" in text
    _assert_no_secret(run_dir)  # the backend was built (the key read) before the gate stopped it
