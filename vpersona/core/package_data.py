"""The CSV tables shipped in ``vpersona/resources`` (marginals, countries, IW map positions), read once
per process. The returned DataFrames are shared: callers filter or copy them, never modify them."""
from __future__ import annotations

from functools import cache
from importlib import resources

import pandas as pd


@cache
def package_table(name: str) -> pd.DataFrame:
    """``vpersona/resources/<name>`` (``.csv`` or ``.csv.gz``); empty cells are NaN, text like "NA" stays text."""
    with resources.files("vpersona").joinpath(f"resources/{name}").open("rb") as fh:
        return pd.read_csv(fh, compression="gzip" if name.endswith(".gz") else None,
                           keep_default_na=False, na_values=[""])
