"""The answers table on disk: written chunk by chunk as a grid runs, read back by later notebooks.

The bytes are exactly those of ``table.to_csv(path, index=False, float_format="%.10g")`` (the
format notebook 02 always wrote), whether the table is written whole or in chunks. ``.csv.gz``
files are gzip with a zero timestamp and no file name, so the same table gives the same bytes.

Why a hand-written writer: pandas formats every float cell through Python-level callbacks
(``to_csv`` is most of the grid harness's time at 10⁶ rows). This formats each column with one
list comprehension using the same rules (``float_format % v``, empty cell for a missing value,
``str`` otherwise). A table none of whose cells holds a character the CSV format would quote
(``,`` ``"`` CR LF; an answers table never does) is written as its cells joined by commas; any
other table goes to the stdlib ``csv`` writer, which pandas itself uses (the join is ~8 µs per
answers row faster). Columns of other dtypes (categorical, datetime...) are written by pandas.
"""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pandas as pd

FLOAT_FORMAT = "%.10g"
QUOTED = (",", '"', "\r", "\n")  # only a cell with one of these can be quoted by the csv writer


def _cells(column: pd.Series, float_format: str) -> list | None:
    """The column's cells as pandas' ``to_csv`` would format them, or None if not handled here."""
    kind = column.dtype.kind
    values = column.to_numpy()
    if kind == "f":
        return [float_format % v if v == v else "" for v in values.tolist()]
    if kind in "iub":
        return [str(v) for v in values.tolist()]
    if kind == "O":
        missing = pd.isna(values)
        if missing.any():
            return ["" if m else v for v, m in zip(values.tolist(), missing.tolist())]
        return values.tolist()
    return None


def _plain(cells: list) -> bool:
    """All cells are strings the csv writer would write as they are (see the module docstring)."""
    try:
        text = "\x00".join(cells)
    except TypeError:  # a cell that is not a str: the csv writer formats it
        return False
    return not any(c in text for c in QUOTED)


class AnswersWriter:
    """Append tables to one CSV (``.csv``) or gzip CSV (``.csv.gz``) file; the header once.

    Written to ``<path>.part`` and renamed to ``path`` by :meth:`close` (``complete=True``), so a
    file at ``path`` is always a whole table."""

    def __init__(self, path: str | Path, float_format: str = FLOAT_FORMAT):
        self.path = Path(path)
        self.part = self.path.with_name(self.path.name + ".part")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.float_format = float_format
        self._raw = open(self.part, "wb")
        self._zip = (gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=1)
                     if self.path.suffix == ".gz" else None)
        self._text = io.TextIOWrapper(self._zip or self._raw, encoding="utf-8", newline="", write_through=False)
        self._writer = csv.writer(self._text, lineterminator="\n")
        self._header = True

    def write(self, table: pd.DataFrame) -> None:
        cells = [_cells(table[c], self.float_format) for c in table.columns] if table.columns.is_unique else [None]
        if any(c is None for c in cells):
            table.to_csv(self._text, header=self._header, index=False, float_format=self.float_format,
                         lineterminator="\n")
        else:
            if self._header:
                self._writer.writerow(list(table.columns))
            if len(cells) > 1 and all(_plain(c) for c in cells):
                if cells[0]:
                    self._text.write("\n".join(map(",".join, zip(*cells))) + "\n")
            else:
                self._writer.writerows(zip(*cells))
        self._header = False

    def close(self, complete: bool = True) -> None:
        self._text.flush()
        self._text.detach()
        if self._zip is not None:
            self._zip.close()
        self._raw.close()
        if complete:
            self.part.replace(self.path)

    def __enter__(self) -> "AnswersWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)


def read_answers(path: str | Path) -> pd.DataFrame:
    """An answers table written by :class:`AnswersWriter` (or ``to_csv``), ``.csv`` or ``.csv.gz``.
    Only empty cells are missing values (no flag; no valid answer): a country code "NA" stays."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    """What pandas writes for ``table`` in the answers format (the reference the writer matches)."""
    return table.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n").encode("utf-8")

