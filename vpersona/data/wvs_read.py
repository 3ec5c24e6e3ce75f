"""Reading a WVS Wave 7 release file: which format it is, where its header is, and whether it is whole.

The format is taken from the file name (``.csv``, ``.csv.gz``, ``.zip``, ``.sav``/``.zsav``,
``.dta``) and checked against the file's first bytes, so a renamed file is refused with what it
really is (``$FL2``/``$FL3`` SPSS, ``<stata_dta>`` or an old-format Stata byte header, ``PK``
zip, ``\\x1f\\x8b`` gzip, an HTML page) instead of failing deep in a parser. A CSV is checked to be
complete before it is read: every row must have as many fields as the header (an interrupted
download leaves a short last row, which pandas would otherwise fill with blanks silently).
"""
from __future__ import annotations

import csv
import gzip
import re
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

COUNTRY_COLUMN = "B_COUNTRY_ALPHA"
ID_COLUMN = "D_INTERVIEW"
FORMATS = {".csv": "csv", ".csv.gz": "csv", ".zip": "zip", ".sav": "sav", ".zsav": "sav", ".dta": "dta"}
Q_COLUMN = re.compile(r"^Q\d+[A-Z]?$", re.IGNORECASE)
_HEADER_SCAN_LINES = 30
_QUOTED = re.compile(rb'"[^"]*"')
# what each kind of file starts with, and the name it should have
_KINDS = {"sav": ("an SPSS .sav file", ".sav"), "dta": ("a Stata .dta file", ".dta"),
          "zip": ("a zip archive", ".zip"), "gzip": ("a gzip file", ".csv.gz"),
          "html": ("an HTML page (a login or error page saved instead of the data?)", None)}


class WVSFileError(ValueError):
    """The WVS file, or what was asked of it, is not what ``load_wvs`` expects."""


def sniff(path: Path) -> str:
    """What the file's first bytes say it is: sav, dta, zip, gzip, html or text."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head[:4] in (b"$FL2", b"$FL3"):
        return "sav"
    # Stata 117+ starts with an XML-like tag; formats 113-115 with version, byte order, file type 1
    if head.startswith(b"<stata_dta>") or (len(head) >= 4 and 0x71 <= head[0] <= 0x77
                                           and head[1] in (1, 2) and head[2] == 1 and head[3] == 0):
        return "dta"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "html"
    return "text"


def format_of(name: str, strict: bool = True) -> str | None:
    lower = name.lower()
    for suffix, fmt in sorted(FORMATS.items(), key=lambda kv: -len(kv[0])):
        if lower.endswith(suffix):
            return fmt
    if strict:
        raise WVSFileError(f"unsupported WVS file type {name!r}; expected one of "
                           f"{', '.join(FORMATS)} (the WVS release comes as CSV, SPSS or Stata)")
    return None


def _check_kind(path: Path, fmt: str, label: str) -> None:
    """Refuse a file whose first bytes contradict its name (we do not guess: a rename is clearer)."""
    expected = {"csv": "gzip" if path.name.lower().endswith(".gz") else "text", "zip": "zip",
                "sav": "sav", "dta": "dta"}[fmt]
    if path.name.lower().endswith(".zsav"):
        return  # compressed SPSS has the same $FL3 magic; let pyreadstat judge
    found = sniff(path)
    if found == expected or (expected in ("sav", "dta") and found == "text"):
        return  # a text file named .sav/.dta gets the reader's own error below
    what, suffix = _KINDS.get(found, ("a text file", ".csv"))
    named = "".join(path.suffixes[-2:]) if path.name.lower().endswith(".gz") else path.suffix
    fix = f": rename it to {suffix}" if suffix else "; expected the WVS-7 release (CSV, SPSS .sav or Stata .dta)"
    raise WVSFileError(f"{label}: this is {what} named {named}{fix}")


@contextmanager
def readable(path: Path):
    """Yield ``(format, path to read, label)``, unpacking a .zip release into a temporary folder."""
    if not path.exists():
        raise WVSFileError(f"WVS file {path} does not exist; download the WVS Wave 7 release "
                           "(CSV, SPSS .sav or Stata .dta) from worldvaluessurvey.org")
    if path.is_dir():
        raise WVSFileError(f"WVS file {path} is a directory; expected the release file itself (CSV, SPSS .sav "
                           "or Stata .dta)")
    if not path.is_file():
        raise WVSFileError(f"WVS file {path} is not a regular file")
    fmt = format_of(path.name)
    _check_kind(path, fmt, path.name)
    if fmt != "zip":
        yield fmt, path, path.name
        return
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")
                   and format_of(m, strict=False) in ("csv", "sav", "dta")]
        if len(members) != 1:
            raise WVSFileError(f"{path.name} must hold exactly one .csv, .sav or .dta file; it holds "
                               f"{members or archive.namelist()}")
        with tempfile.TemporaryDirectory(prefix="vpersona-wvs-") as tmp:
            inner = Path(archive.extract(members[0], tmp))
            label = f"{path.name}:{members[0]}"
            _check_kind(inner, format_of(inner.name), label)
            yield format_of(inner.name), inner, label


def _open_text(path: Path):
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="")


def _gzip_cut(label: str, err: Exception, line_no: int | None = None) -> str:
    """A gzip stream that ends early (``EOFError``: truncated, e.g. an interrupted download) or
    whose data fail their check (``BadGzipFile`` CRC/length, ``zlib.error``: corrupted bytes)."""
    where = f" after line {line_no}" if line_no else ""
    if isinstance(err, EOFError):
        return (f"{label} looks truncated: the gzip stream ends{where} ({err}; an interrupted download?); "
                "expected a complete WVS-7 file")
    return (f"{label} is corrupted: its gzip data fail their check{where} ({err}; damaged on disk or in "
            "transfer: download it again); expected a complete WVS-7 file")


class Header:
    """Column names of the file and, for CSV, how to parse it (separator, rows before the header)."""

    def __init__(self, columns: list[str], sep: str = ",", skiprows: int = 0):
        self.columns, self.sep, self.skiprows = columns, sep, skiprows

    @classmethod
    def read(cls, path: Path, fmt: str) -> "Header":
        if fmt in ("sav", "dta"):
            import pyreadstat
            reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
            try:
                _, meta = reader(str(path), metadataonly=True)
            except Exception as err:  # pyreadstat raises its own ReadstatError / PyreadstatError
                raise WVSFileError(f"cannot read {path.name} as a {fmt} file: {err}") from err
            return cls(list(meta.column_names))
        try:
            with _open_text(path) as fh:
                lines = [line for _, line in zip(range(_HEADER_SCAN_LINES), fh)]
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:  # a short or damaged file, early on
            raise WVSFileError(_gzip_cut(path.name, err)) from None
        for i, line in enumerate(lines):
            sep = max(",;\t", key=line.count)
            names = [n.strip() for n in next(csv.reader([line], delimiter=sep))]
            upper = {n.upper() for n in names}
            if COUNTRY_COLUMN in upper or sum(bool(Q_COLUMN.match(n)) for n in names) >= 2:
                return cls(names, sep=sep, skiprows=i)
        if not lines:
            return cls([])
        sep = max(",;\t", key=lines[0].count)
        return cls([n.strip() for n in next(csv.reader([lines[0]], delimiter=sep))], sep=sep)

    def check_complete(self, path: Path, label: str) -> None:
        """Refuse a CSV with a row whose field count differs from the header's.

        Written by hand rather than with pandas (which pads a short row with blanks silently, and
        whose ``on_bad_lines`` hook needs the slow Python engine): a row without quotes is counted
        by its separators (quoted parts removed first). About a second per 100 MB of CSV.
        """
        n, sep = len(self.columns), self.sep.encode()
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        line_no, last = 0, b""
        try:
            with opener(path, "rb") as fh:
                for line_no, raw in enumerate(fh, start=1):
                    last = raw
                    if line_no <= self.skiprows + 1 or not raw.strip():
                        continue
                    if b'"' in raw:  # separators inside quotes do not count
                        bare = _QUOTED.sub(b"", raw)
                        got = bare.count(sep) + 1 if b'"' not in bare else \
                            len(next(csv.reader([raw.decode("utf-8", "replace")], delimiter=self.sep), []))
                    else:
                        got = raw.count(sep) + 1
                    if got != n:
                        break
                else:
                    return
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
            raise WVSFileError(_gzip_cut(label, err, line_no)) from None
        if got > n:
            raise WVSFileError(f"{label}: line {line_no} has {got} fields, the header {n} (a separator "
                               "inside an unquoted field?); expected a complete WVS-7 file")
        if not last.endswith(b"\n"):
            raise WVSFileError(f"{label} looks truncated: line {line_no} has {got} of {n} fields (an interrupted "
                               "download?); expected a complete WVS-7 file")
        raise WVSFileError(f"{label} is damaged: line {line_no} has {got} of {n} fields (corrupted or "
                           "hand-edited?); expected a complete WVS-7 file")

    def read_columns(self, path: Path, fmt: str, names: list[str]) -> pd.DataFrame:
        """Read only ``names`` (answer codes, not value labels)."""
        if fmt in ("sav", "dta"):
            import pyreadstat
            if fmt == "sav":  # user_missing keeps the negative codes SPSS declares as missing
                df, _ = pyreadstat.read_sav(str(path), usecols=names, user_missing=True,
                                            apply_value_formats=False)
            else:
                df, _ = pyreadstat.read_dta(str(path), usecols=names, apply_value_formats=False)
            return df
        text_columns = {n: str for n in names if n.upper() in (COUNTRY_COLUMN, ID_COLUMN)}
        numeric = {n: "float64" for n in names if n not in text_columns}
        decimals = (".", ",") if self.sep == ";" else (".",)
        for decimal in decimals:
            try:
                return pd.read_csv(path, sep=self.sep, skiprows=self.skiprows, usecols=names,
                                   dtype={**text_columns, **numeric}, decimal=decimal,
                                   encoding="utf-8-sig", encoding_errors="replace")
            except ValueError as err:
                problem = err
        raise WVSFileError(f"{path.name}: a column that should hold numeric answer codes holds text "
                           f"({problem})")
