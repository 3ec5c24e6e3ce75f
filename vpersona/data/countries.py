"""Facts about countries shipped with vpersona: names and Inglehart-Welzel cultural zones
(``vpersona/resources/countries.csv``)."""
from __future__ import annotations

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
