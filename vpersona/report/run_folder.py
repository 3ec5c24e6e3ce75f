"""The run folder's own records, kept by ``vpersona run`` around the notebooks.

* ``run.json``: which notebooks of this run completed, failed or have not run (``status``), and
  whether the run is ``complete``; rewritten after every notebook, so a folder always says how
  far its outputs go.
* :func:`clear_previous`: a rerun into an existing folder first removes the previous run's
  outputs (executed notebooks, ``tables/``, ``figures/``, ``data/``, ``summary.json``,
  ``manifest.json``, ``run.json``), so new and old results are never mixed. An SQLite file (an
  answer cache, whatever its name) and its journal files are never removed, nor anything else
  that is not a run output.
* :func:`collect_warnings`: after each notebook, the warnings about the data it recorded with
  ``RunFolder.note`` (e.g. "no W_WEIGHT column ... unweighted shares", items not asked, pairs
  dropped) plus any ``UserWarning`` it showed on stderr without noting it, each tagged with the
  notebook, in ``data/warnings.json``.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import nbformat

OUTPUT_FILES = ("summary.json", "manifest.json", "run.json")
OUTPUT_FOLDERS = ("data", "tables", "figures")
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


def clear_previous(run_dir: Path) -> list[Path]:
    """Remove the previous run's outputs from ``run_dir`` (see the module docstring); return them."""
    candidates = [run_dir / name for name in OUTPUT_FILES] + sorted(run_dir.glob("[0-9][0-9]_*.ipynb"))
    for sub in OUTPUT_FOLDERS:
        if (run_dir / sub).is_dir():
            candidates += sorted(p for p in (run_dir / sub).rglob("*") if p.is_file())
    removed = []
    for path in candidates:
        if path.is_file() and not _is_sqlite(path):
            path.unlink()
            removed.append(path)
    return removed


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
        if statuses <= {"completed"} or "failed" in statuses:
            self.record["finished"] = _now()
        self.record["complete"] = statuses <= {"completed"}
        self.write()

    def write(self) -> None:
        self.path.write_text(json.dumps(self.record, indent=2) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def notebook_warnings(path: Path) -> list[str]:
    """The distinct warnings (category: message) an executed notebook printed on stderr, from
    vpersona or the notebook's own cells (third-party deprecation notices are left out)."""
    if not path.exists():
        return []
    found = []
    for cell in nbformat.read(path, as_version=4).cells:
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
    path.write_text(json.dumps({"warnings": found}, indent=2) + "\n")
    return found
