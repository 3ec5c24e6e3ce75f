"""A real, non-editable install: the wheel carries the notebooks, configs and resources (and no
tests), and the installed ``vpersona`` command runs from an unrelated directory, writing under
``<cwd>/outputs`` or ``--output-dir``.

The fresh venv gets the engine wheel the Makefile built (``~/.cache/vpersona/engine-*``) and
vpersona's other dependencies from the package index, as a pip user would.
"""
import glob
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.full, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "vpersona", "notebooks", "configs")
TINY = ["-p", "N_PERSONAS", "2", "-p", "COUNTRIES", "[DEU, NGA]", "-p", "TARGET_ITEMS", "[Q6, Q29, Q36, Q150]"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The vpersona wheel, built (with build isolation) from a copy of the sources."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)], check=True)
    (built,) = out.glob("vpersona-*.whl")
    return built


def test_wheel_carries_notebooks_configs_and_resources_and_no_tests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    notebooks = {f"vpersona/notebooks/{p.name}" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    configs = {f"vpersona/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")}
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "vpersona/resources"], capture_output=True,
                             text=True, check=True).stdout.split()
    resources = {t for t in tracked if not t.endswith(".py")}
    assert len(notebooks) >= 4 and {"demo", "smoke", "paper"} <= {Path(c).stem for c in configs} and resources
    assert notebooks <= names and configs <= names
    assert resources <= names, f"resource files missing from the wheel: {sorted(resources - names)}"
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or "conftest" in n]


def test_installed_command_runs_from_another_directory(wheel, tmp_path):
    engines = sorted(glob.glob(os.path.expanduser("~/.cache/vpersona/engine-*/llama_cpp_python-*.whl")))
    if not engines:
        pytest.skip("no engine wheel built yet (`make engine`)")
    venv = tmp_path / "venv"
    # nothing of this checkout may leak in (PYTHONPATH would make pip see it as installed)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + [engines[-1]], check=True, env=env)  # the portable engine, never a native rebuild
    subprocess.run(pip + [str(wheel)], check=True, env=env)
    install_seconds = time.perf_counter() - t0
    print(f"fresh venv install: {install_seconds:.0f} s")

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    vpersona = str(venv / "bin" / "vpersona")
    subprocess.run([vpersona, "run", "--config", "smoke", "--quiet", "--run-id", "here", *TINY],
                   cwd=cwd, env=env, check=True, timeout=1800)
    run_dir = cwd / "outputs" / "here"
    assert (run_dir / "summary.json").is_file() and (run_dir / "manifest.json").is_file()
    shipped = {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert {p.name for p in run_dir.glob("[0-9][0-9]_*.ipynb")} == shipped  # every notebook ran

    other = tmp_path / "chosen"
    subprocess.run([vpersona, "run", "--config", "smoke", "--quiet", "--run-id", "there", "--output-dir", str(other),
                    *TINY], cwd=cwd, env=env, check=True, timeout=1800)
    assert (other / "there" / "manifest.json").is_file() and not (cwd / "outputs" / "there").exists()
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import vpersona; print(vpersona.__file__)"],
                          cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout
    assert str(venv) in site and str(ROOT) not in site  # the installed copy ran, not this checkout
