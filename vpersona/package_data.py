"""The CSV tables shipped in ``vpersona/data`` (marginals, countries, IW map positions), read once
per process. The returned DataFrames are shared: callers filter or copy them, never modify them."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd


@lru_cache(maxsize=None)
def package_table(name: str) -> pd.DataFrame:
    """``vpersona/data/<name>`` (``.csv`` or ``.csv.gz``); empty cells are NaN, text like "NA" stays text."""
    with resources.files("vpersona").joinpath(f"data/{name}").open("rb") as fh:
        return pd.read_csv(fh, compression="gzip" if name.endswith(".gz") else None,
                           keep_default_na=False, na_values=[""])


@lru_cache(maxsize=None)
def country_names() -> dict[str, str]:
    """ISO alpha-3 code -> country name, from ``vpersona/data/countries.csv``."""
    table = package_table("countries.csv")
    return dict(zip(table["iso3"], table["name"]))
