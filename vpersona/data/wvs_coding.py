"""How WVS Wave 7 answer codes become a :class:`Survey`'s ``responses`` and ``missing``.

How answers are coded (``Survey.responses`` / ``Survey.missing``):

* an answer that is one of the catalog item's option codes is valid: its code in ``responses``,
  0 in ``missing``. The autonomy index Y003 has the real values -2..2, so for it only codes
  below -2 are missing codes (WVS codes it -5 when missing);
* a WVS negative missing code (-1 don't know, -2 no answer, -3 not applicable, -4 not asked,
  -5 missing) is NaN in ``responses`` and kept in ``missing``;
* any other value (e.g. Q254 code 5 "I am not [nationality]", a blank cell, text that is not a
  number, an unknown negative code) is NaN with missing code -5, and reported in a warning naming
  item, value and count (nothing becomes missing silently);
* numeric items (age Q262) keep any non-negative value.

Derived indices absent from the file are computed from their components (a file that has them
keeps its own values). A respondent gets the index only when every component is valid;
otherwise the index is missing with code -4 if a component was not asked, else -5 (as in the
WVS release, where derived indices carry -5 for missing):

* Y003 autonomy = (Q8 independence + Q14 determination) - (Q15 religious faith + Q17 obedience),
  each 1 when mentioned (code 1) and 0 when not (code 2); range -2..2.
* Y002 post-materialism from the two national-aims choices Q154/Q155: 1 materialist when both
  are in {1 order, 3 prices}, 3 post-materialist when both are in {2 say, 4 free speech},
  else 2 mixed.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from vpersona.data.catalog import Item
from vpersona.data.survey import MISSING_KINDS

NOT_ASKED = -4
OTHER_MISSING = -5

# Components of the derived indices, keyed by ``Item.derived`` in the catalog.
INDEX_COMPONENTS = {"autonomy": ("Q8", "Q14", "Q15", "Q17"), "postmaterialism": ("Q154", "Q155")}


def autonomy_index(q8, q14, q15, q17) -> pd.Series:
    """Y003 from the child-quality codes (1 mentioned, 2 not): (Q8 + Q14) - (Q15 + Q17).

    NaN where any component is not 1 or 2.
    """
    parts = [pd.Series(q, dtype="float64") for q in (q8, q14, q15, q17)]
    ok = np.logical_and.reduce([p.isin([1, 2]) for p in parts])
    m = [(p == 1).astype("float64") for p in parts]
    return (m[0] + m[1] - m[2] - m[3]).where(ok)


def postmaterialism_index(q154, q155) -> pd.Series:
    """Y002 from the first and second national-aims choices (codes 1..4).

    1 materialist (both in {1, 3}), 3 post-materialist (both in {2, 4}), 2 mixed; NaN where
    either choice is not 1..4.
    """
    a, b = pd.Series(q154, dtype="float64"), pd.Series(q155, dtype="float64")
    ok = a.isin([1, 2, 3, 4]) & b.isin([1, 2, 3, 4])
    out = pd.Series(2.0, index=a.index)
    out[a.isin([1, 3]) & b.isin([1, 3])] = 1.0
    out[a.isin([2, 4]) & b.isin([2, 4])] = 3.0
    return out.where(ok)


_INDEX_FUNCTIONS = {"autonomy": autonomy_index, "postmaterialism": postmaterialism_index}


def code_item(raw: pd.Series, item: Item):
    """Return (values with NaN for missing, missing codes, [(unexpected value, count)]); an
    unexpected value is a number that is no option, ``"blank"`` or the text that is no number."""
    num = pd.to_numeric(raw, errors="coerce").astype("float64")
    text = raw.astype("string").str.strip()
    blank = raw.isna() | (text == "")
    undecodable = num.isna() & ~blank
    if item.scale == "numeric":
        valid = num >= 0
    else:
        valid = num.isin(item.codes)
    wvs_missing = ~valid & num.isin(list(MISSING_KINDS))
    codes = pd.Series(OTHER_MISSING, index=num.index, dtype="int8")
    codes[valid] = 0
    codes[wvs_missing] = num[wvs_missing].astype("int8")
    odd = num[~valid & ~wvs_missing & num.notna()]
    unexpected = [(float(v), int(n)) for v, n in sorted(odd.value_counts().items())]
    if blank.any():
        unexpected.append(("blank", int(blank.sum())))
    unexpected += [(str(v), int(n)) for v, n in sorted(text[undecodable].value_counts().items())]
    return num.where(valid), codes, unexpected


def derive(item: Item, data: pd.DataFrame, component_codes: dict):
    parts = INDEX_COMPONENTS[item.derived]
    inputs = [data[p].where(component_codes[p] == 0) for p in parts]
    values = _INDEX_FUNCTIONS[item.derived](*inputs)
    codes = pd.Series(0, index=values.index, dtype="int8")
    any_missing = np.logical_or.reduce([component_codes[p] != 0 for p in parts])
    any_not_asked = np.logical_or.reduce([component_codes[p] == NOT_ASKED for p in parts])
    codes[any_missing] = OTHER_MISSING
    codes[any_not_asked] = NOT_ASKED
    return values.where(codes == 0), codes


def warn_unexpected(unexpected, label: str) -> None:
    parts = []
    for code, value, n in unexpected:
        if value == "blank":
            parts.append(f"{code} blank (n={n})")
        elif isinstance(value, str):
            parts.append(f"{code} text {value!r} (n={n})")
        else:
            parts.append(f"{code} code {int(value) if float(value).is_integer() else value} (n={n})")
    warnings.warn(f"{label}: answer values that are not answer options of the catalog item, treated "
                  f"as missing (-5): {'; '.join(parts)}", stacklevel=4)
