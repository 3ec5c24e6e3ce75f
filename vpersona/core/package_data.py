"""Reading what vpersona ships in ``vpersona/resources``: CSV tables (marginals, countries, IW map
positions), read once per process and shared (callers filter or copy them, never modify them), and
the YAML files (catalog, descriptors, templates, prompts, prices), through one YAML reader that
also reads a user's file of the same layout."""
from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml


@cache
def package_table(name: str) -> pd.DataFrame:
    """``vpersona/resources/<name>`` (``.csv`` or ``.csv.gz``); empty cells are NaN, text like "NA" stays text."""
    with resources.files("vpersona").joinpath(f"resources/{name}").open("rb") as fh:
        return pd.read_csv(fh, compression="gzip" if name.endswith(".gz") else None,
                           keep_default_na=False, na_values=[""])


def _parse_yaml(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{where} is not valid YAML ({str(err).splitlines()[0]}); expected a YAML file") from None


def resource_yaml(name: str):
    """The parsed YAML file ``vpersona/resources/<name>``."""
    return _parse_yaml(resources.files("vpersona").joinpath(f"resources/{name}").read_text(encoding="utf-8"),
                       f"vpersona/resources/{name}")


def read_yaml(path: str | Path):
    """A user's YAML file, parsed; a missing file or bad YAML is a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected a YAML file)")
    return _parse_yaml(path.read_text(encoding="utf-8"), str(path))
