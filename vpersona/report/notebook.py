"""What every notebook does first, and how notebooks hand data to each other through the run folder.

``setup(RUN_DIR)`` makes the run folder's ``data/``, ``tables/`` and ``figures/``, sets display
and plotting defaults, prints where the run goes and returns a :class:`RunFolder`. Notebook N
reads only what notebooks < N wrote there (``read_table``, ``read_json``, ``survey``) and writes
its own files (``write_table``, ``write_json``), so data flows one way. Warnings about the data
(unweighted shares, items not asked, pairs dropped) go through ``note`` / ``noting_warnings``:
printed in the notebook and recorded in ``data/warnings.json``, which ``vpersona run`` shows at
the end of the run and copies into ``summary.json``.
"""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vpersona.report.run_folder import write_text  # temp file + rename: a full disk never truncates one

# Tables are written with 10 significant digits: enough for every metric, and stable across runs.
FLOAT_FORMAT = "%.10g"


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def read_json(self, name: str) -> dict:
        return json.loads((self.path / "data" / f"{name}.json").read_text())

    def write_json(self, name: str, record: dict) -> Path:
        return write_text(self.path / "data" / f"{name}.json", json.dumps(record, indent=2, default=str) + "\n")

    def read_table(self, name: str, folder: str = "tables", **read_csv) -> pd.DataFrame:
        """A table; the persona plan's tables in ``data/`` keep respondent ids as text (a persona
        of one respondent has ``respondents = "752070001"``, not the integer)."""
        from vpersona.personas.tables import PLAN_FILES, TEXT_COLUMNS
        if folder == "data" and name in PLAN_FILES.values():
            read_csv["dtype"] = {**{c: str for c in TEXT_COLUMNS}, **read_csv.get("dtype", {})}
        return pd.read_csv(self.path / folder / f"{name}.csv", **read_csv)

    def note(self, message) -> None:
        """Print a warning about the data and record it in ``data/warnings.json``."""
        print("note:", message)
        path = self.path / "data" / "warnings.json"
        record = json.loads(path.read_text()) if path.exists() else {"warnings": []}
        record["warnings"].append({"notebook": None, "warning": str(message)})
        write_text(path, json.dumps(record, indent=2) + "\n")

    @contextmanager
    def noting_warnings(self):
        """``with run.noting_warnings(): ...``: every warning raised inside becomes a :meth:`note`."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught:
            self.note(w.message)

    def write_table(self, table: pd.DataFrame, name: str, folder: str = "tables") -> Path:
        return write_text(self.path / folder / f"{name}.csv", table.to_csv(index=False, float_format=FLOAT_FORMAT))

    @property
    def info(self) -> dict:
        """What notebook 01 recorded about the data (``data/01_data.json``)."""
        return self.read_json("01_data")

    def survey(self):
        """The respondents notebook 01 selected, with its SYNTHETIC flag and source."""
        from vpersona.data.wvs import load_wvs
        info = self.info
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # notebook 01 already reported items not asked
            survey = load_wvs(self.path / "data" / "respondents.csv.gz", not_asked="exclude")
        survey.synthetic, survey.source = info["synthetic"], info["source"]
        return survey


def setup(run_dir: str | Path) -> RunFolder:
    """Create the run folder's sub-folders, set display and plotting defaults; return the folder."""
    import vpersona
    from vpersona.report import plots
    run = RunFolder(Path(run_dir).resolve())
    for sub in ("data", "tables", "figures"):
        (run.path / sub).mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 160, "display.max_columns", 30, "display.precision", 3)
    plots.setup()
    print("vpersona", vpersona.__version__, "| run folder:", run.path)
    return run
