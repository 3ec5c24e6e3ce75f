"""The four notebooks, executed for real with papermill on the `smoke` config (embedded model,
bundled SYNTHETIC sample): what they write, reproducibility, failure reporting, and secrets."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from vpersona.report.config import load_config
from vpersona.report.run import RunFailed, notebooks, run

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-vpersona-test-SECRET-4f9c2e"

# The smoke run executes every notebook twice with the embedded model (~150 s on 2 cores): the
# full suite (`make test-all`, CI), so that `make test` stays well under 5 minutes.
pytestmark = pytest.mark.full


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*"))}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", SECRET)  # must never reach notebooks, outputs or the manifest
    try:
        run_dir = run(load_config("smoke"), "smoke-test", output_dir=out, progress=False, log=lambda *_: None)
        first = _hashes(run_dir / "tables")
        stats_first = json.loads((run_dir / "data" / "02_simulation.json").read_text())["run_stats"]
        run(load_config("smoke"), "smoke-test", output_dir=out, progress=False, log=lambda *_: None)
    finally:
        mp.undo()
    return run_dir, first, stats_first


def test_smoke_run_writes_the_run_folder(smoke_run):
    run_dir, _, _ = smoke_run
    for nb in notebooks():
        assert (run_dir / nb.name).exists()
    for name in ("01_human_targets.csv", "03_predictions.csv", "04_methods.csv", "04_cells.csv", "04_gap.csv"):
        assert (run_dir / "tables" / name).stat().st_size > 0, name
    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert {"01_iw_map.png", "03_diversity.png", "04_error_by_country.png", "04_gap.png",
            "04_culture_map.png", "04_examples.png"} <= figures


def test_summary_carries_methods_reference_rows_and_synthetic_label(smoke_run):
    run_dir, _, _ = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["synthetic"] is True
    assert "SYNTHETIC" in summary["headline"][0]
    methods = summary["methods"]
    for ref in ("uniform", "global", "regression", "human-25", "human-100", "human-400"):
        assert ref in methods, ref
    for kind in ("none", "country", "value", "value+T"):
        assert kind in methods, kind
    for m, v in methods.items():
        assert 0.0 <= v["jsd"] <= 1.0 and v["jsd_lo"] <= v["jsd"] <= v["jsd_hi"], m
    # the sampling error of N answers shrinks with N: a sanity check on the reference rows
    assert methods["human-400"]["jsd"] < methods["human-100"]["jsd"] < methods["human-25"]["jsd"]
    assert summary["n_countries"] == 5 and summary["n_items"] == 6


def test_manifest_records_provenance(smoke_run):
    run_dir, _, _ = smoke_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    rec = manifest["recorded"]
    assert rec["01_data"]["synthetic"] is True and len(rec["01_data"]["data_sha256"]) == 64
    sim = rec["02_simulation"]
    assert sim["backend"]["kind"] == "embedded" and sim["backend"]["model"].endswith(".gguf")
    assert sim["prompt_template_hash"] and len(sim["persona_sample_sha256"]) == 64
    assert manifest["packages"]["vpersona"] and manifest["config"]["name"] == "smoke"
    assert set(manifest["tables"]) == set(p.name for p in (run_dir / "tables").glob("*"))


def test_rerun_is_byte_identical_and_served_from_cache(smoke_run):
    run_dir, first, stats_first = smoke_run
    assert _hashes(run_dir / "tables") == first
    stats = json.loads((run_dir / "data" / "02_simulation.json").read_text())["run_stats"]
    assert stats_first["calls"] > 0
    assert stats["calls"] == 0 and stats["cache_hits"] == stats["unique_queries"]


# secrets: tests/report/test_routes.py runs the openai route (which reads OPENAI_API_KEY) and checks
# that the key lands in no output; the embedded smoke run never reads it.


def _output_text(path: Path) -> str:
    """What an executed notebook showed (stream and display outputs), not its cell sources."""
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            parts.append(str(output.get("text", "")))
            parts += [str(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def test_executed_notebooks_say_synthetic(smoke_run):
    run_dir, _, _ = smoke_run
    assert "*** SYNTHETIC respondents: not real people." in _output_text(run_dir / "01_data_prep.ipynb")
    assert "SYNTHETIC" in _output_text(run_dir / "04_analysis.ipynb")


@pytest.mark.full
def test_failing_cell_names_notebook_and_cell(tmp_path):
    config = load_config("smoke", {"COUNTRIES": "[XYZ]"})
    with pytest.raises(RunFailed, match=r"01_data_prep\.ipynb failed in cell \d+ .*XYZ"):
        run(config, "bad", output_dir=tmp_path, progress=False, log=lambda *_: None)


@pytest.mark.full
def test_cli_exits_nonzero_on_a_failing_notebook(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vpersona.report.cli", "run", "--config", "smoke", "-p", "COUNTRIES", "[XYZ]",
                           "--output-dir", str(tmp_path), "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert "01_data_prep.ipynb failed in cell" in proc.stderr


def test_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(ValueError, match="N_PERSONA"):
        run(load_config("smoke", {"N_PERSONA": "3"}), "x", output_dir=tmp_path, progress=False)


def test_secret_looking_parameters_are_refused():
    with pytest.raises(ValueError, match="secret"):
        load_config("smoke", {"OPENAI_API_KEY": "sk-123"})


def test_every_parameter_line_is_understood_by_papermill():
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = re.findall(r"^([A-Z_][A-Z0-9_]*)\s*=", cell.source, flags=re.M)
        assert list(pm.inspect_notebook(str(path))) == names, path.name


@pytest.mark.full
def test_plain_papermill_runs_a_notebook(tmp_path):
    out = tmp_path / "run"
    pm.execute_notebook(str(ROOT / "notebooks" / "01_data_prep.ipynb"), str(tmp_path / "01.ipynb"),
                        parameters={"RUN_DIR": str(out), "COUNTRIES": ["DEU", "NGA", "JPN"], "TARGET_ITEMS": ["Q6", "Q29"]},
                        progress_bar=False, cwd=str(tmp_path))
    assert (out / "tables" / "01_human_targets.csv").exists()


@pytest.mark.full
def test_paper_config_reads_an_official_layout_file_and_stops_before_paying(tmp_path, monkeypatch):
    """The `paper` route on a file in the official WVS-7 layout (here a small SYNTHETIC one, since
    real data can't ship): human targets from respondents, and no request before CONFIRM_COST."""
    from vpersona.report.cli import main as cli_main
    wvs_file = tmp_path / "WVS_like.csv.gz"
    assert cli_main(["synthesize", "--countries", "AUS", "NGA", "JPN", "--n", "150", "--seed", "5", "--out", str(wvs_file)]) == 0
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  gpt-test: {input: 0.5, output: 1.0}\n")
    monkeypatch.setenv("WVS7_FILE", str(wvs_file))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there: any request would fail
    config = load_config("paper", {"MODEL": "gpt-test", "POWER_MODEL": "gpt-test", "N_PERSONAS": "20", "PRICE_TABLE": str(prices)})
    with pytest.raises(RunFailed, match=r"02_simulation\.ipynb failed in cell \d+ \(CostNotConfirmed: .*nothing was sent"):
        run(config, "paper-test", output_dir=tmp_path, progress=False, log=lambda *_: None)
    run_dir = tmp_path / "paper-test"
    info = json.loads((run_dir / "data" / "01_data.json").read_text())
    assert info["human_targets"] == "respondents" and info["countries"] == ["AUS", "JPN", "NGA"]
    assert not (run_dir / "data" / "answers.csv").exists()
    executed = (run_dir / "02_simulation.ipynb").read_text()
    assert "cost estimate before any request" in executed and "total_usd" in executed
    assert SECRET not in executed


def test_calibration_notebook_shows_the_mean_is_kept(smoke_run):
    run_dir, _, _ = smoke_run
    text = (run_dir / "03_calibration.ipynb").read_text()
    found = re.search(r"max \|mean shift\| over (\d+) calibrated ordered cells: ([0-9.e+-]+)", text)
    assert found, "the calibration notebook no longer reports the mean shift"
    assert int(found.group(1)) > 0 and float(found.group(2)) < 1e-9
