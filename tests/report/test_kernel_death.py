"""A kernel that dies mid-run is reported in one line: notebook, cell, signal, what to do."""
import nbformat

import pytest

from vpersona.report.kernel import CellTracker, describe_death
from vpersona.report.run import RunFailed, run


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("RUN_DIR = '.'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.parametrize("sig", ["SIGILL", "SIGKILL"])
def test_a_kernel_killed_by_a_signal_names_notebook_cell_and_signal(tmp_path, sig):
    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    _notebook(nbdir / "01_fine.ipynb", ["x = 1"])
    _notebook(nbdir / "02_dies.ipynb", ["x = 1", f"import os, signal\nos.kill(os.getpid(), signal.{sig})", "y = 2"])
    config = {"name": "t", "run_id": "r", "parameters": {}}
    with pytest.raises(RunFailed) as err:
        run(config, output_dir=tmp_path / "out", notebook_dir=nbdir, progress=False, log=lambda *a: None)
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert "02_dies.ipynb" in msg and "cell starting `import os, signal` (cell index 3" in msg  # 1: injected parameters
    assert f"killed by {sig}" in msg and "vpersona doctor" in msg
    if sig == "SIGILL":
        assert "make engine" in msg


def test_unknown_exit_is_said_plainly():
    assert "no exit status known" in describe_death("03_x.ipynb", CellTracker(), None)
    assert "before any cell ran" in describe_death("03_x.ipynb", CellTracker(), 1)
