"""Facts about countries shipped with vpersona: names and Inglehart-Welzel cultural zones
(``vpersona/resources/countries.csv``)."""
from __future__ import annotations

import difflib
from functools import cache

import pandas as pd

from vpersona.core.package_data import package_table


@cache
def country_names() -> dict[str, str]:
    """ISO alpha-3 code -> country name, from ``vpersona/resources/countries.csv``."""
    table = package_table("countries.csv")
    return dict(zip(table["iso3"], table["name"]))


def zones(countries=None) -> pd.Series:
    """IW cultural zone per country (index iso3)."""
    table = package_table("countries.csv").set_index("iso3")["zone"]
    if countries is None:
        return table
    countries = list(countries)
    unknown = [c for c in countries if c not in table.index]
    if unknown:
        raise ValueError(f"countries {unknown} are not in vpersona/resources/countries.csv")
    return table[countries]


def country_hint(code: str, known: dict[str, str]) -> str:
    """``code`` with a guess of what was meant (by name or by spelling), for error messages."""
    if code == "MOR":
        return "'MOR' (Morocco is MAR in the WVS data; MOR is the codebook's code)"
    by_name = {name.upper(): iso3 for iso3, name in known.items()}
    guesses = [by_name[n] for n in difflib.get_close_matches(code, list(by_name), n=2, cutoff=0.7)]
    guesses += difflib.get_close_matches(code, list(known), n=3, cutoff=0.6)
    guesses = list(dict.fromkeys(guesses))
    return f"{code!r} (did you mean {', '.join(guesses)}?)" if guesses else repr(code)
