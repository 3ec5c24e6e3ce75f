"""The run folder's own records, kept by ``vpersona run`` around the notebooks.

* ``run.json``: which notebooks of this run completed, failed or have not run (``status``), and
  whether the run is ``complete``; rewritten after every notebook, so a folder always says how
  far its outputs go.
* :func:`set_aside`: a rerun into an existing folder first moves the previous run's outputs
  (executed notebooks, ``tables/``, ``figures/``, ``data/``, ``summary.json``, ``manifest.json``,
  ``run.json``) into ``.previous-run/``, so new and old results are never mixed; a rerun that
  completes deletes them (:func:`discard_aside`), one that fails or is interrupted moves its own
  outputs into ``failed-rerun/`` and puts the previous ones back (:func:`restore_aside`): a failed
  rerun never costs the last good results. An SQLite file (an answer cache, whatever its name)
  and its journal files are never moved, nor anything else that is not a run output.
* :func:`write_text`: every record the run writes goes to a temporary file renamed over the old
  one, so a full disk leaves the old file whole, never a truncated one; the error names the path
  and the cause (:class:`WriteError`).
* :func:`collect_warnings`: after each notebook, the warnings about the data it recorded with
  ``RunFolder.note`` (e.g. "no W_WEIGHT column ... unweighted shares", items not asked, pairs
  dropped) plus any ``UserWarning`` it showed on stderr without noting it, each tagged with the
  notebook, in ``data/warnings.json``.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import nbformat

OUTPUT_FILES = ("summary.json", "manifest.json", "run.json")
OUTPUT_FOLDERS = ("data", "tables", "figures")
ASIDE = ".previous-run"   # the previous run's outputs while a rerun runs
FAILED = "failed-rerun"   # the outputs of a rerun that failed, beside the restored previous ones
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
# "<file>:<line>: <Category>: <message>" as warnings.showwarning prints it
_WARNING_LINE = re.compile(r"^(?P<file>\S.*?):(?P<line>\d+): (?P<category>\w*Warning): (?P<message>.+)$")
_QUIET = ("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning")


def _is_sqlite(path: Path) -> bool:
    if path.name.endswith(_SQLITE_SIDECARS):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


_UMASK = os.umask(0o022)
os.umask(_UMASK)


class WriteError(OSError):
    """A file of the run could not be written: one line naming the path and the cause."""


def describe_os_error(path, err: OSError) -> str:
    """``cannot write /x/y: no space left on device (ENOSPC)``: the path and the cause, one line."""
    name = errno.errorcode.get(err.errno or 0, "")
    cause = (err.strerror or str(err)).lower() + (f" ({name})" if name else "")
    return f"cannot write {path}: {cause}"


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, renamed over
    the old one only when complete (a full disk leaves the old file as it was)."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.chmod(fd, 0o666 & ~_UMASK)  # as open() would create it (mkstemp makes it private)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise WriteError(err.errno, describe_os_error(path, err)) from None
    return path


def probe_write(folder: Path, what: str, size: int = 1 << 16) -> str | None:
    """None if ``folder`` (created if absent) takes a ``size``-byte file, else the one-line reason
    (no space, read-only, permission); the probe file is removed either way."""
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".vpersona-probe-", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\0" * size)
            fh.flush()
            os.fsync(fh.fileno())
        return None
    except OSError as err:
        return f"{what}: {describe_os_error(folder, err)}"
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _outputs(run_dir: Path) -> list[Path]:
    """The previous run's output files in ``run_dir`` (never an SQLite file)."""
    candidates = [run_dir / name for name in OUTPUT_FILES] + sorted(run_dir.glob("[0-9][0-9]_*.ipynb"))
    for sub in OUTPUT_FOLDERS:
        if (run_dir / sub).is_dir():
            candidates += sorted(p for p in (run_dir / sub).rglob("*") if p.is_file())
    return [p for p in candidates if p.is_file() and not _is_sqlite(p)]


def _move(files: list[Path], root: Path, into: Path) -> None:
    for path in files:
        target = into / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)


def set_aside(run_dir: Path) -> int:
    """Move the previous run's outputs into ``run_dir/.previous-run/``; return how many. If a
    rerun was killed before it could restore them, they are still there: the killed rerun's
    partial outputs are removed instead, and the earlier results stay aside."""
    aside = run_dir / ASIDE
    if aside.is_dir() and any(p.is_file() for p in aside.rglob("*")):
        for path in _outputs(run_dir):
            path.unlink()
        return sum(1 for p in aside.rglob("*") if p.is_file())
    shutil.rmtree(run_dir / FAILED, ignore_errors=True)  # an older failed rerun's outputs
    files = _outputs(run_dir)
    _move(files, run_dir, aside)
    return len(files)


def restore_aside(run_dir: Path) -> Path:
    """After a failed rerun: its outputs go to ``failed-rerun/``, the previous ones come back."""
    failed = run_dir / FAILED
    shutil.rmtree(failed, ignore_errors=True)
    _move(_outputs(run_dir), run_dir, failed)
    aside = run_dir / ASIDE
    _move(sorted(p for p in aside.rglob("*") if p.is_file()), aside, run_dir)
    shutil.rmtree(aside, ignore_errors=True)
    return failed


def discard_aside(run_dir: Path) -> None:
    """After a rerun that completed: the previous run's outputs are deleted."""
    shutil.rmtree(run_dir / ASIDE, ignore_errors=True)
    shutil.rmtree(run_dir / FAILED, ignore_errors=True)


class RunStatus:
    """``run.json``: the status of each notebook of the run in this folder."""

    def __init__(self, run_dir: Path, run_id: str, config: str, notebooks: list[str]):
        self.path = run_dir / "run.json"
        self.record = {"run_id": run_id, "config": config, "started": _now(), "finished": None,
                       "complete": False, "status": {name: "not run" for name in notebooks}}
        self.write()

    def set(self, notebook: str, status: str) -> None:
        self.record["status"][notebook] = status
        statuses = set(self.record["status"].values())
        if statuses <= {"completed"} or statuses & {"failed", "interrupted"}:
            self.record["finished"] = _now()
        self.record["complete"] = statuses <= {"completed"}
        self.write()

    def write(self) -> None:
        write_text(self.path, json.dumps(self.record, indent=2) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def notebook_warnings(path: Path) -> list[str]:
    """The distinct warnings (category: message) an executed notebook printed on stderr, from
    vpersona or the notebook's own cells (third-party deprecation notices are left out)."""
    if not path.exists():
        return []
    found = []
    try:
        cells = nbformat.read(path, as_version=4).cells
    except (OSError, ValueError):  # unreadable (e.g. cut short by a full disk): the run reports that itself
        return []
    for cell in cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream" or output.get("name") != "stderr":
                continue
            for line in str(output.get("text", "")).splitlines():
                m = _WARNING_LINE.match(line)
                if not m or m["category"] in _QUIET:
                    continue
                source = m["file"].replace("\\", "/")
                if "vpersona" in source or "ipykernel" in source:
                    text = f"{m['category']}: {m['message'].strip()}"
                    if text not in found:
                        found.append(text)
    return found


def collect_warnings(run_dir: Path, notebook: str, found: list[dict]) -> list[dict]:
    """``found`` plus what ``notebook`` noted or showed; rewrites ``data/warnings.json`` with all."""
    path = run_dir / "data" / "warnings.json"
    noted = json.loads(path.read_text())["warnings"] if path.exists() else []
    found = list(found)
    new = [w["warning"] for w in noted if w.get("notebook") is None]
    new += [w for w in notebook_warnings(run_dir / notebook)
            if not any(w.endswith(n) or n in w for n in new)]  # a noted warning also shown
    for text in new:
        entry = {"notebook": notebook, "warning": text}
        if entry not in found:
            found.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps({"warnings": found}, indent=2) + "\n")
    return found
