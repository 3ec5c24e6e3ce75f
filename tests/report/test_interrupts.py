"""Ctrl-C (SIGINT) and SIGTERM sent to the process group of a real run: one line naming the
notebook, the answers safe in the cache and the resume command; exit 130/143; the kernel ended;
run.json says "interrupted"; a rerun (the resume) completes from the cache."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

# notebook 02 stores 5 answers in the run's cache, says so, then works "for minutes" unless the
# cache already has them (the resume)
SLOW = """import os, time
from pathlib import Path
from vpersona.llm.backends.base import Reply
from vpersona.llm.cache import AnswerCache, resolve_cache_path
Path(RUN_DIR, 'kernel.pid').write_text(str(os.getpid()))
with AnswerCache(resolve_cache_path(CACHE_PATH, RUN_DIR)) as cache:
    resumed = len(cache) == 5
    for i in range(5):
        cache.put(f'k{i}', Reply(texts=['A']), backend='x', estimator='logprobs')
Path(RUN_DIR, 'ready').write_text('1')
if not resumed:
    time.sleep(300)
"""
DRIVER = """import sys
from argparse import Namespace
from pathlib import Path
from vpersona.report.run import main_run
args = Namespace(config=sys.argv[1], param=None, run_id=None, output_dir=sys.argv[2], quiet=True)
sys.exit(main_run(args, notebook_dir=Path(sys.argv[3])))
"""

# real signals to real process groups, ~15 s each: the full suite (`make test-all`, CI)
pytestmark = pytest.mark.full


@pytest.fixture
def project(tmp_path, notebook):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    notebook(nbs / "01_first.ipynb", 'RUN_DIR = "x"', "x = 1")
    notebook(nbs / "02_slow.ipynb", 'RUN_DIR = "x"\nCACHE_PATH = "auto"', SLOW)
    notebook(nbs / "03_last.ipynb", 'RUN_DIR = "x"', "y = 2")
    config = tmp_path / "c.yaml"
    config.write_text("run_id: r\nparameters: {}\n")
    return config, tmp_path / "out", nbs


def _start(project):
    config, out, nbs = project
    # its own process group, as a shell gives a job: the signal reaches the run and its kernel
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(config), str(out), str(nbs)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130),
                                      pytest.param(signal.SIGTERM, 143, marks=pytest.mark.full)])
def test_a_signal_to_the_process_group_stops_the_run_in_one_line(project, sig, code):
    config, out, nbs = project
    proc = _start(project)
    ready = out / "r" / "ready"
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    kernel = int((out / "r" / "kernel.pid").read_text())
    os.killpg(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr and len([ln for ln in lines if "interrupted" in ln]) == 1, stderr
    line = next(ln for ln in lines if "interrupted" in ln)
    assert f"interrupted by {sig.name} during 02_slow.ipynb" in line
    assert f"5 answers are safe in the cache {out / 'llm_cache.sqlite'} (+5 in this run)" in line
    assert f"resume with: vpersona run --config {config} --output-dir {out}" in line
    record = json.loads((out / "r" / "run.json").read_text())
    assert record["status"] == {"01_first.ipynb": "completed", "02_slow.ipynb": "interrupted",
                                "03_last.ipynb": "not run"}
    assert record["complete"] is False and record["finished"]
    deadline = time.monotonic() + 10
    while _alive(kernel) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(kernel), "the kernel outlived the run"

    again = _start(project)  # the resume: the 5 answers are in the cache, so notebook 02 is quick
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert json.loads((out / "r" / "run.json").read_text())["complete"] is True


@pytest.mark.full
def test_ctrl_c_during_notebook_02_of_the_teach_config(tmp_path):
    """The user's route: `vpersona run --config teach`, Ctrl-C while notebook 02 asks its questions."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "vpersona.report.cli", "run", "--config", "teach",
                             "--output-dir", str(out)], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    cache = out / "llm_cache.sqlite"
    deadline = time.monotonic() + 300
    while not (cache.exists() and cache.stat().st_size > 0 and (out / "teach" / "run.json").exists()
               and json.loads((out / "teach" / "run.json").read_text())["status"]["02_simulation.ipynb"] == "running"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    line = next(ln for ln in stderr.splitlines() if "interrupted" in ln)
    assert line.startswith("[vpersona] interrupted by SIGINT during 02_simulation.ipynb; ")
    assert f"answers are safe in the cache {cache}" in line and "resume with: vpersona run --config teach" in line
    assert json.loads((out / "teach" / "run.json").read_text())["status"]["02_simulation.ipynb"] == "interrupted"
