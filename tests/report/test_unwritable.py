"""Disk full and unwritable places, on real mounts (a small tmpfs, a read-only bind mount; root
only, skipped with the reason otherwise): the pre-check names the path and the cause before any
notebook; a disk that fills during a notebook stops the run in one line, leaves no truncated
notebook, and a rerun that fails so keeps the previous results; a read-only cache that holds every
answer still serves the run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import nbformat
import pytest

from vpersona.llm.backends.base import Reply
from vpersona.llm.cache import AnswerCache
from vpersona.report.parameters import ConfigError
from vpersona.report.run import RunFailed, run

FILL = """from pathlib import Path
if FILL:
    try:
        with open(Path(RUN_DIR) / 'data' / 'filler.bin', 'wb') as fh:  # until the disk is full
            while True:
                fh.write(b'x' * 65536)
    except OSError:
        pass
(Path(RUN_DIR) / 'tables' / '02_t.csv').write_text('tag\\n' + TAG + '\\n')
"""
READ_CACHE = """from pathlib import Path
from vpersona.llm.cache import AnswerCache, resolve_cache_path
with AnswerCache(resolve_cache_path(CACHE_PATH, RUN_DIR)) as cache:
    assert cache.readonly and cache.get('k') is not None
    n = len(cache)
(Path(RUN_DIR) / 'tables' / '02_t.csv').write_text(f'answers\\n{n}\\n')
"""

# real tmpfs and read-only mounts, ~20 s in all: the full suite (`make test-all`, CI)
pytestmark = pytest.mark.full


@pytest.fixture
def mounts(tmp_path):
    """``mount(kind, where, size=None)`` as root; every mount is undone after the test."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root and mount(8) for a tmpfs / read-only bind mount")
    done = []

    def mount(kind, where, size="2m"):
        where.mkdir(parents=True, exist_ok=True)
        if kind == "tmpfs":
            cmds = [["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]]
        else:  # read-only view of the folder itself
            cmds = [["mount", "--bind", str(where), str(where)], ["mount", "-o", "remount,bind,ro", str(where)]]
        for i, cmd in enumerate(cmds):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                if i:
                    subprocess.run(["umount", str(where)])
                pytest.skip(f"cannot mount here ({' '.join(cmd)}: {proc.stderr.strip()})")
        done.append(where)
        return where

    yield mount
    for where in reversed(done):
        subprocess.run(["umount", "-l", str(where)], check=False)


def _run(nbs, out, lines, **params):
    return run({"name": "t", "run_id": "r", "parameters": params}, output_dir=out, notebook_dir=nbs,
               progress=False, log=lines.append)


def test_a_full_disk_is_named_before_any_notebook(tmp_path, mounts, notebook):
    nbs = tmp_path / "nb"
    nbs.mkdir()
    notebook(nbs / "01_a.ipynb", 'RUN_DIR = "x"', "x = 1")
    out = mounts("tmpfs", tmp_path / "full", size="1m")
    with open(out / "filler", "wb") as fh, pytest.raises(OSError):
        while True:
            fh.write(b"x" * 65536)
    lines = []
    with pytest.raises(ConfigError) as err:
        _run(nbs, out, lines)
    assert str(err.value) == f"the run folder: cannot write {out / 'r'}: no space left on device (ENOSPC)"
    assert not any("01_a" in x for x in lines)


def test_a_disk_that_fills_during_a_rerun_keeps_the_previous_results_and_no_truncated_file(tmp_path, mounts, notebook):
    nbs = tmp_path / "nb"
    nbs.mkdir()
    notebook(nbs / "01_a.ipynb", 'RUN_DIR = "x"\nTAG = "a"', "from pathlib import Path\n"
              "(Path(RUN_DIR) / 'tables' / '01_t.csv').write_text('tag\\n' + TAG + '\\n')")
    notebook(nbs / "02_fill.ipynb", 'RUN_DIR = "x"\nTAG = "a"\nFILL = False', FILL)
    out = mounts("tmpfs", tmp_path / "small", size="2m")
    run_dir = _run(nbs, out, [])
    good = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    lines = []
    with pytest.raises(RunFailed) as err:
        _run(nbs, out, lines, TAG="b", FILL=True)
    message = str(err.value)
    assert "\n" not in message and "no space left on device (ENOSPC)" in message
    assert message.startswith(f"02_fill.ipynb: cannot write {run_dir}")
    assert {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*")
            if p.is_file() and "failed-rerun" not in p.parts} == good  # the previous results, whole
    for nb in run_dir.rglob("*.ipynb"):  # nothing truncated stands in for a notebook
        nbformat.read(nb, as_version=4)
    assert not list(run_dir.rglob(".*.part*"))
    assert json.loads((run_dir / "failed-rerun" / "run.json").read_text())["status"]["02_fill.ipynb"] == "failed"


def test_a_read_only_cache_that_holds_the_answers_serves_the_run(tmp_path, mounts, notebook):
    nbs = tmp_path / "nb"
    nbs.mkdir()
    notebook(nbs / "01_read.ipynb", 'RUN_DIR = "x"\nCACHE_PATH = "auto"', READ_CACHE)
    folder = tmp_path / "shared"
    folder.mkdir()
    with AnswerCache(folder / "c.sqlite") as cache:
        cache.put("k", Reply(texts=["A"]), backend="x", estimator="logprobs")
    mounts("ro", folder)
    lines = []
    run_dir = _run(nbs, tmp_path / "out", lines, CACHE_PATH=str(folder / "c.sqlite"))
    assert (run_dir / "tables" / "02_t.csv").read_text() == "answers\n1\n"
    assert any(f"cannot write {folder}: read-only file system (EROFS): the cache is used read-only" in x
               for x in lines)


def test_a_read_only_place_for_a_new_cache_is_refused_before_any_notebook(tmp_path, mounts, notebook):
    nbs = tmp_path / "nb"
    nbs.mkdir()
    notebook(nbs / "01_read.ipynb", 'RUN_DIR = "x"\nCACHE_PATH = "auto"', READ_CACHE)
    folder = mounts("ro", tmp_path / "ro")
    with pytest.raises(ConfigError, match=f"cannot write {folder}: read-only file system .*writable CACHE_PATH"):
        _run(nbs, tmp_path / "out", [], CACHE_PATH=str(folder / "new.sqlite"))
