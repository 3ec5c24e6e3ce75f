"""The run folder's records, on two tiny notebooks run by the real runner (papermill, a kernel):
run.json status, a failed rerun leaves no stale outputs (but keeps a cache), data warnings reach the
console and summary.json, and the cache in use is named with its answer count before any notebook."""
from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from vpersona.llm.backends.base import Reply
from vpersona.llm.cache import AnswerCache
from vpersona.report.run import RunFailed, run

WARNING = "wvs7.csv has no W_WEIGHT column: every respondent gets weight 1.0 (unweighted shares)"


def _notebook(path, params: str, body: str):
    cell = new_code_cell(params, metadata={"tags": ["parameters"]})
    nbformat.write(new_notebook(cells=[cell, new_code_cell(body)],
                                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), path)


@pytest.fixture
def tiny(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_first.ipynb", 'RUN_DIR = "x"\nCACHE_PATH = "auto"\nTAG = "a"',
              "import warnings\nfrom pathlib import Path\n"
              f"warnings.warn({WARNING!r})\n"
              "(Path(RUN_DIR) / 'tables' / '01_t.csv').write_text(f'tag\\n{TAG}\\n')")
    _notebook(nbs / "02_second.ipynb", 'RUN_DIR = "x"\nFAIL = False',
              "from pathlib import Path\nimport json, warnings\nrun = Path(RUN_DIR)\n"
              "if FAIL:\n    raise ValueError('boom')\n"
              "(run / 'tables' / '03_x.csv').write_text('a\\n1\\n')\n(run / 'tables' / '04_y.csv').write_text('b\\n2\\n')\n"
              "(run / 'figures' / '04_f.png').write_bytes(b'png')\n(run / 'data' / '02.json').write_text('{}')\n"
              "(run / 'summary.json').write_text(json.dumps({'headline': ['ok']}))\n"
              "from vpersona.report.notebook import RunFolder\n"
              "folder = RunFolder(run)\nfolder.note('3 (persona, question) pairs dropped: question not asked in that country')\n"
              "with folder.noting_warnings():\n    warnings.warn('items not asked (all -4) in: MAR/Q182')\n"
              "warnings.warn('a warning the notebook shows itself')")
    return nbs, tmp_path / "outputs"


def _run(nbs, out, lines, **params):
    config = {"name": "tiny", "run_id": "r", "parameters": params}
    return run(config, output_dir=out, notebook_dir=nbs, progress=False, log=lines.append)


@pytest.mark.full  # real processes / notebook runs, 7-15 s: the full suite
def test_failed_rerun_keeps_the_previous_results_apart_from_its_own_and_keeps_the_cache(tiny):
    nbs, out = tiny
    cache_path = out / "r" / "data" / "answers.sqlite"  # a cache kept inside the run folder
    cache_path.parent.mkdir(parents=True)
    with AnswerCache(cache_path) as cache:
        cache.put("k", Reply(texts=["A"], usage={"prompt_tokens": 3, "completion_tokens": 1}), backend="x", estimator="logprobs")
    lines = []
    run_dir = _run(nbs, out, lines, CACHE_PATH=str(cache_path))
    assert {p.name for p in (run_dir / "tables").iterdir()} == {"01_t.csv", "03_x.csv", "04_y.csv"}
    assert json.loads((run_dir / "run.json").read_text())["complete"] is True
    assert (run_dir / "summary.json").exists() and (run_dir / "manifest.json").exists()
    previous = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and "sqlite" not in p.name}

    lines = []
    failed = run_dir / "failed-rerun"
    with pytest.raises(RunFailed) as err:
        _run(nbs, out, lines, CACHE_PATH=str(cache_path), TAG="b", FAIL=True)
    # the previous run's results are back, byte for byte, and nothing of the failed rerun among them
    kept = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*")
            if p.is_file() and failed not in p.parents and "sqlite" not in p.name}
    assert kept == previous
    assert f"02_second.ipynb failed in cell 3 (ValueError: boom); the executed notebook with the traceback is " \
           f"{failed / '02_second.ipynb'}" == str(err.value)
    assert json.loads((run_dir / "run.json").read_text())["complete"] is True
    # the failed rerun's own outputs are apart, in failed-rerun/
    assert {p.name for p in (failed / "tables").iterdir()} == {"01_t.csv"}
    assert (failed / "tables" / "01_t.csv").read_text() == "tag\nb\n"  # the new run's table
    assert not (failed / "summary.json").exists() and (failed / "02_second.ipynb").exists()
    record = json.loads((failed / "run.json").read_text())
    assert record["status"] == {"01_first.ipynb": "completed", "02_second.ipynb": "failed"}
    assert record["complete"] is False
    with AnswerCache(cache_path) as cache:
        assert cache.totals()["answers"] == 1
    assert any(f"answer cache: {cache_path} (1 answer already" in x for x in lines)
    assert any("aside" in x and "previous run" in x for x in lines)
    assert any("previous run's results are back" in x for x in lines)

    _run(nbs, out, [], CACHE_PATH=str(cache_path), TAG="c")  # a rerun that completes replaces them
    assert (run_dir / "tables" / "01_t.csv").read_text() == "tag\nc\n"
    assert not failed.exists() and not (run_dir / ".previous-run").exists()


def test_cache_is_named_before_the_first_notebook(tiny):
    nbs, out = tiny
    lines = []
    _run(nbs, out, lines)
    first = next(i for i, x in enumerate(lines) if "01_first" in x)
    assert any(f"answer cache: {out / 'llm_cache.sqlite'} (new: no answers yet)" in x for x in lines[:first])


def test_data_warnings_reach_the_console_and_summary(tiny):
    nbs, out = tiny
    lines = []
    run_dir = _run(nbs, out, lines)
    expected = [f"01_first.ipynb: UserWarning: {WARNING}",
                "02_second.ipynb: 3 (persona, question) pairs dropped: question not asked in that country",
                "02_second.ipynb: items not asked (all -4) in: MAR/Q182",
                "02_second.ipynb: UserWarning: a warning the notebook shows itself"]
    assert json.loads((run_dir / "summary.json").read_text())["warnings"] == expected
    recorded = json.loads((run_dir / "data" / "warnings.json").read_text())["warnings"]
    assert [f"{w['notebook']}: {w['warning']}" for w in recorded] == expected
    assert lines[-5:] == ["[vpersona] 4 warnings about the data:", *(f"  {x}" for x in expected)]
