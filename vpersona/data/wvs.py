"""Load the official WVS Wave 7 release (CSV, SPSS .sav, Stata .dta) into a :class:`Survey`.

The user downloads the file from worldvaluessurvey.org after accepting its terms; vpersona never
ships respondent-level WVS data. ``load_wvs`` reads only the columns it needs (country, interview
id, weight, the requested catalog items and, for the two derived indices, their components), so
the full release (~97k rows x ~600 columns) loads in modest memory. The file is only read, never
written.

How answers are coded (valid codes, WVS missing codes, derived indices Y003/Y002) is in
:mod:`vpersona.data.wvs_coding`; reading the file (formats, header, completeness) in
:mod:`vpersona.data.wvs_read`.

Not-asked items: an item is *not asked* in a country when every respondent there has code -4.
For items named in ``items=`` this is an error (``not_asked="error"``, listing every
(country, item) pair) or a warning (``not_asked="exclude"``: the item stays, all -4 there, and
``Survey.asked`` says False). With the default ``items=None`` (all catalog items in the file) it
is always a warning, since the real release has such pairs (e.g. Q182 in Egypt, Q164 in Iraq).
"""
from __future__ import annotations

import difflib
import gzip
import io
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from vpersona.data.catalog import Catalog, Item, load_catalog
from vpersona.data.countries import country_hint, country_names
from vpersona.data.survey import Survey, describe  # noqa: F401  (describe: re-exported)
from vpersona.data.wvs_coding import (INDEX_COMPONENTS, NOT_ASKED, OTHER_MISSING, autonomy_index,  # noqa: F401
                                      code_item, derive, postmaterialism_index, warn_unexpected)
from vpersona.data.wvs_read import COUNTRY_COLUMN, ID_COLUMN, Q_COLUMN, Header, WVSFileError, readable

DEFAULT_WEIGHT_COLUMN = "W_WEIGHT"
BUNDLED_SAMPLE = "resources/wvs7_SYNTHETIC_sample.csv.gz"
BUNDLED_SOURCE = "vpersona bundled SYNTHETIC sample"

# --------------------------------------------------------------------------- public functions

def load_wvs(path, countries=None, items=None, *, catalog: Catalog | None = None,
             not_asked: str = "error", weight_column: str | None = DEFAULT_WEIGHT_COLUMN) -> Survey:
    """Load WVS Wave 7 respondents from the official release file as a :class:`Survey`.

    ``path``: a ``.csv`` (comma or semicolon separated), ``.csv.gz``, ``.zip`` (holding one
    csv/sav/dta file), ``.sav``/``.zsav`` or ``.dta`` file. ``countries``: ISO alpha-3 codes
    (``B_COUNTRY_ALPHA``; Morocco is MAR) or None for every country in the file. ``items``:
    catalog item codes, or None for every catalog item the file has (or can derive).
    ``not_asked``: ``"error"`` or ``"exclude"`` (see the module docstring). ``weight_column``:
    the respondent weight (default ``W_WEIGHT``; weight 1.0 with a warning when the file lacks
    it); None for unweighted without warning.
    """
    catalog = catalog if catalog is not None else load_catalog()
    if not_asked not in ("error", "exclude"):
        raise ValueError(f"not_asked={not_asked!r}; expected 'error' or 'exclude'")
    return _load(Path(path), countries, items, catalog, not_asked, weight_column,
                 source=f"WVS-7 file {Path(path).name}", synthetic=False)


def load_bundled_sample(countries=None, items=None) -> Survey:
    """Load the bundled SYNTHETIC respondent sample (WVS-7 layout) through the same code path.

    The respondents are not real: the sample is generated so that each country's item marginals
    match the real WVS-7 weighted marginals (see ``vpersona/resources/SYNTHETIC_SAMPLE.md``).
    """
    ref = resources.files("vpersona").joinpath(BUNDLED_SAMPLE)
    if not ref.is_file():
        raise FileNotFoundError(f"the bundled SYNTHETIC sample {BUNDLED_SAMPLE} is missing from the "
                                "vpersona package; regenerate it with `python -m vpersona.data.synthetic`")
    with resources.as_file(ref) as path:
        return _load(Path(path), countries, items, load_catalog(), "exclude", DEFAULT_WEIGHT_COLUMN,
                     source=BUNDLED_SOURCE, synthetic=True)


def load_respondents(data: str | Path, countries="all") -> tuple[Survey, Path]:
    """The respondents a run's ``DATA`` parameter names, and the file they came from.

    ``data``: ``"bundled"`` (the SYNTHETIC sample) or a path to the official WVS-7 file;
    ``countries``: ISO alpha-3 codes or ``"all"``. Items not asked in a country are excluded there
    (with a warning), so every later step sees only what was asked.
    """
    countries = None if countries == "all" else list(countries)
    if data == "bundled":
        return load_bundled_sample(countries), bundled_sample_path()
    return load_wvs(data, countries, not_asked="exclude"), Path(data)


def bundled_sample_path() -> Path:
    """Filesystem path of the bundled SYNTHETIC sample (for hashing it into a run's manifest)."""
    return Path(str(resources.files("vpersona").joinpath(BUNDLED_SAMPLE)))


def save_survey(survey: Survey, path) -> Path:
    """Write ``survey`` back in the official WVS-7 CSV layout (gzip, byte-reproducible): valid
    codes where answered, the negative missing code otherwise. ``load_wvs`` reads it back into an
    equal Survey; the notebooks use this to hand the selected respondents to later steps."""
    path = Path(path)
    items = survey.items
    codes = survey.responses[items].where(survey.responses[items].notna(), survey.missing[items])
    out = pd.concat([pd.DataFrame({COUNTRY_COLUMN: survey.responses["country"].to_numpy(),
                                   ID_COLUMN: survey.responses.index.to_numpy(),
                                   DEFAULT_WEIGHT_COLUMN: survey.responses["weight"].to_numpy()}),
                     codes.reset_index(drop=True).round().astype("Int64")], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a run-folder hand-off, read once or twice: fast compression (level 1) over small files
    with gzip.GzipFile(path, "wb", compresslevel=1, mtime=0) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
        out.to_csv(fh, index=False, lineterminator="\n", float_format="%.10g")
    return path


# --------------------------------------------------------------------------- the loading steps

def _load(path: Path, countries, items, catalog: Catalog, not_asked: str, weight_column,
          source: str, synthetic: bool) -> Survey:
    weight_column = weight_column.upper() if weight_column else None
    with readable(path) as (fmt, real_path, label):
        header = Header.read(real_path, fmt)
        columns = {c.upper(): c for c in header.columns}
        if COUNTRY_COLUMN not in columns and not any(Q_COLUMN.match(c) for c in header.columns):
            raise WVSFileError(f"{label} is not a WVS Wave 7 file: expected the columns {COUNTRY_COLUMN} "
                               f"and Q1..Q290; its first columns are {header.columns[:8]}")
        explicit_items = items is not None
        item_codes = _requested_items(items, catalog, columns)
        plan = _column_plan(item_codes, catalog, columns, label)

        wanted = [COUNTRY_COLUMN] + [c for c in (ID_COLUMN, weight_column) if c and c in columns]
        wanted += [c for c in plan.read if c not in wanted]
        if fmt == "csv":
            header.check_complete(real_path, label)
        raw = header.read_columns(real_path, fmt, [columns[c] for c in wanted])
        raw.columns = [c.upper() for c in raw.columns]

    raw["_row"] = np.arange(len(raw))
    raw[COUNTRY_COLUMN] = _country_codes(raw[COUNTRY_COLUMN], label)
    _report_replaced_bytes(raw, label)
    selected = _select_countries(raw, countries, label)
    data = raw[raw[COUNTRY_COLUMN].isin(selected)].reset_index(drop=True)

    index = _respondent_ids(data, label)
    weight = _weights(data, weight_column, label)

    values, codes, unexpected = {}, {}, []
    for code in plan.direct:
        values[code], codes[code], bad = code_item(data[code], catalog[code])
        unexpected += [(code, v, n) for v, n in bad]
    component_codes = {}
    for code in plan.components:
        _, component_codes[code], bad = code_item(data[code], catalog[code])
        unexpected += [(code, v, n) for v, n in bad if (code, v, n) not in unexpected]
    for code in plan.derived:
        values[code], codes[code] = derive(catalog[code], data, component_codes)
    if unexpected:
        warn_unexpected(unexpected, label)

    responses = pd.DataFrame({"country": data[COUNTRY_COLUMN].to_numpy(), "weight": weight,
                              **{code: values[code].to_numpy() for code in item_codes}}, index=index)
    missing = pd.DataFrame({code: codes[code].to_numpy() for code in item_codes}, index=index)
    _check_asked(responses, missing, item_codes, explicit_items, not_asked, label)
    return Survey(responses=responses, missing=missing, source=source, synthetic=synthetic)


class _Plan:
    """Which requested items are read directly, which are derived, which components to read."""

    def __init__(self):
        self.direct, self.derived, self.components = [], [], []

    @property
    def read(self) -> list[str]:
        return self.direct + [c for c in self.components if c not in self.direct]


def _requested_items(items, catalog: Catalog, columns: dict) -> list[str]:
    if items is None:
        found = [c for c in catalog.codes() if c in columns or _derivable(catalog[c], columns)]
        if not found:
            raise WVSFileError("the file has none of the vpersona catalog items "
                               f"({', '.join(catalog.codes()[:6])}, ...)")
        return found
    items = [items] if isinstance(items, str) else list(items)
    unknown = [c for c in items if c not in catalog]
    if unknown:
        hints = "; ".join(f"{c!r} (did you mean {', '.join(m)}?)" if (m := difflib.get_close_matches(
            str(c).upper(), catalog.codes(), n=3)) else repr(c) for c in unknown)
        raise WVSFileError(f"items not in the vpersona catalog: {hints}. Catalog items: "
                           f"{', '.join(catalog.codes())}")
    return list(dict.fromkeys(items))


def _derivable(item: Item, columns: dict) -> bool:
    parts = INDEX_COMPONENTS.get(item.derived or "", ())
    return bool(parts) and all(p in columns for p in parts)


def _column_plan(item_codes: list[str], catalog: Catalog, columns: dict, label: str) -> _Plan:
    plan, absent = _Plan(), []
    if COUNTRY_COLUMN not in columns:
        absent.append(f"{COUNTRY_COLUMN} (ISO alpha-3 country code)")
    for code in item_codes:
        item = catalog[code]
        if code in columns:
            plan.direct.append(code)
        elif _derivable(item, columns):
            plan.derived.append(code)
            plan.components += [p for p in INDEX_COMPONENTS[item.derived] if p not in plan.components]
        elif item.derived in INDEX_COMPONENTS:
            parts = INDEX_COMPONENTS[item.derived]
            absent.append(f"{code} (or all its components {', '.join(parts)}; missing "
                          f"{', '.join(p for p in parts if p not in columns)})")
        else:
            absent.append(f"{code} (requested item)")
    if absent:
        raise WVSFileError(f"{label} lacks required columns: {'; '.join(absent)}")
    return plan


def _country_codes(column: pd.Series, label: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column):
        raise WVSFileError(f"{label}: {COUNTRY_COLUMN} holds numbers; expected ISO alpha-3 codes "
                           "such as SWE (numeric country codes are in B_COUNTRY)")
    return column.fillna("").astype(str).str.strip().str.upper()


def _select_countries(raw: pd.DataFrame, countries, label: str) -> list[str]:
    present = sorted(raw[COUNTRY_COLUMN].unique())
    known = country_names()
    if countries is None:
        odd = [c for c in present if c not in known]
        if odd:
            warnings.warn(f"{label}: country codes not in WVS Wave 7: {odd} "
                          f"({int(raw[COUNTRY_COLUMN].isin(odd).sum())} rows); loaded as they are",
                          stacklevel=4)
        return present
    requested = [countries] if isinstance(countries, str) else list(countries)
    requested = list(dict.fromkeys(str(c).strip().upper() for c in requested))
    unknown = [c for c in requested if c not in known]
    if unknown:
        raise WVSFileError("unknown country codes (expected ISO alpha-3 codes of WVS Wave 7 "
                           f"countries): {'; '.join(country_hint(c, known) for c in unknown)}")
    absent = [c for c in requested if c not in present]
    if absent:
        raise WVSFileError(f"no respondents in {label} for {', '.join(absent)}; countries present: "
                           f"{', '.join(present)}")
    odd = ~raw[COUNTRY_COLUMN].isin(known)
    if odd.any():  # rows no selection can reach: said, never dropped silently
        codes = sorted(raw.loc[odd, COUNTRY_COLUMN].unique())
        warnings.warn(f"{label}: {int(odd.sum())} rows have a blank or unknown {COUNTRY_COLUMN} "
                      f"({', '.join(repr(c) for c in codes[:5])}) and were not loaded", stacklevel=4)
    return requested


def _report_replaced_bytes(raw: pd.DataFrame, label: str) -> None:
    """Bytes that are not UTF-8 in the text columns (country, interview id) were read as U+FFFD."""
    for column in (COUNTRY_COLUMN, ID_COLUMN):
        if column in raw and not pd.api.types.is_numeric_dtype(raw[column]):
            hit = raw[column].astype("string").str.contains("\ufffd", regex=False, na=False)
            if hit.any():
                warnings.warn(f"{label}: {int(hit.sum())} rows have bytes that are not UTF-8 in {column}, read "
                              "as U+FFFD (e.g. row " + ", ".join(str(i + 1) for i in hit[hit].index[:3]) +
                              " after the header)", stacklevel=5)


def _respondent_ids(data: pd.DataFrame, label: str) -> pd.Index:
    rows = data["_row"].astype(str)
    if ID_COLUMN in data:
        raw = data[ID_COLUMN]
        if pd.api.types.is_numeric_dtype(raw):
            ids = raw.map(lambda v: "" if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v))
        else:
            ids = raw.fillna("").astype(str).str.strip()
        if (ids != "").all() and ids.is_unique:
            return pd.Index(ids.to_numpy(), name="respondent")
        warnings.warn(f"{label}: {ID_COLUMN} has blank or repeated ids; respondents are "
                      "identified by their row number in the file instead", stacklevel=4)
    return pd.Index(rows.to_numpy(), name="respondent")


def _weights(data: pd.DataFrame, weight_column, label: str) -> np.ndarray:
    if weight_column is None:
        return np.ones(len(data))
    column = weight_column
    if column not in data:
        if column != DEFAULT_WEIGHT_COLUMN:
            raise WVSFileError(f"{label} has no weight column {weight_column!r}")
        warnings.warn(f"{label} has no {DEFAULT_WEIGHT_COLUMN} column: every respondent gets weight "
                      "1.0 (unweighted shares)", stacklevel=4)
        return np.ones(len(data))
    weight = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype="float64")
    bad = ~(np.isfinite(weight) & (weight > 0))
    if bad.any():
        where = data.loc[bad, COUNTRY_COLUMN].value_counts().sort_index()
        raise WVSFileError(f"{label}: {column} must be a finite number > 0 for every respondent; "
                           f"{int(bad.sum())} are not (per country: {where.to_dict()}; e.g. "
                           f"{weight[bad][:3].tolist()})")
    return weight


def _check_asked(responses: pd.DataFrame, missing: pd.DataFrame, item_codes, explicit: bool,
                 not_asked: str, label: str) -> None:
    all_not_asked = (missing == NOT_ASKED).groupby(responses["country"]).all()
    pairs = [(country, item) for country in all_not_asked.index for item in item_codes
             if all_not_asked.loc[country, item]]
    if not pairs:
        return
    listed = ", ".join(f"{c}/{i}" for c, i in pairs)
    if explicit and not_asked == "error":
        raise WVSFileError(f"{label}: requested items not asked in requested countries (every answer "
                           f"is -4): {listed}. Drop those items or countries, or pass "
                           "not_asked='exclude' to keep them as not asked")
    warnings.warn(f"{label}: items not asked (all -4) in: {listed}; kept as not asked", stacklevel=4)
