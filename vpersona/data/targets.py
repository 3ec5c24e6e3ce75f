"""Human targets: the real answer distribution per (country, item), the thing every method is scored against.

Two sources give the same distribution table (``country, item, K, p1..p10, n, n_weighted``, options
in catalog order):

- :func:`human_distributions` from respondent-level data (a :class:`~vpersona.data.survey.Survey`: the
  official WVS file or the bundled SYNTHETIC sample): ``W_WEIGHT``-weighted shares over valid
  answers; missing answers (NaN, any negative WVS code) are excluded; ``n`` counts the valid
  answers and ``n_weighted`` sums their weights.
- :func:`marginal_distributions` from the bundled real WVS-7 marginals
  (``vpersona/resources/wvs7_marginals.csv.gz``, ``share_w``); ``n`` is the number of valid answers that
  are answer options and ``n_weighted`` is NaN (the file carries no weight sums).

In both, answer codes that are not options of the catalog item (e.g. Q254 code 5, "I am not
[nationality]") are dropped and the rest renormalised; a (country, item) with no valid answer,
in particular an item not asked in that country, is *absent* from the table, never a row of zeros.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from vpersona.data.catalog import Catalog, load_catalog, option_positions
from vpersona.core.distributions import KMAX, from_matrix
from vpersona.core.package_data import package_table
from vpersona.data.survey import Survey



def _table_from_long(long: pd.DataFrame, share: str, n: str, n_weighted: str | None) -> pd.DataFrame:
    """Long rows (country, item, pos, K, share, n[, n_weighted]) -> distribution table, one row per cell."""
    cells = long.groupby(["country", "item"], sort=True)
    keys = cells.agg(K=("K", "first"), n=(n, "sum"), total=(share, "sum")).reset_index()
    if n_weighted is not None:
        keys["n_weighted"] = cells[n_weighted].sum().to_numpy()
    keys = keys[keys["total"] > 0].reset_index(drop=True)
    cell_index = pd.MultiIndex.from_frame(keys[["country", "item"]])
    row = cell_index.get_indexer(pd.MultiIndex.from_frame(long[["country", "item"]]))
    keep = row >= 0
    P = np.zeros((len(keys), KMAX))
    np.add.at(P, (row[keep], long["pos"].to_numpy()[keep]), long[share].to_numpy(dtype=float)[keep])
    P /= keys["total"].to_numpy()[:, None]
    out = from_matrix(keys[["country", "item"]], P, keys["K"])
    out["n"] = keys["n"].to_numpy(dtype=int)
    out["n_weighted"] = keys["n_weighted"].to_numpy(dtype=float) if n_weighted is not None else np.nan
    return out


def human_distributions(survey: Survey, items, *, catalog: Catalog | None = None) -> pd.DataFrame:
    """Weighted answer distribution per (country, item) from respondent-level data.

    ``items``: catalog item codes that are columns of ``survey.responses``. Cells whose item was not
    asked in a country (every answer code -4, see :meth:`Survey.asked`) or that have no valid
    answer are absent. Answer codes that are not options of the item are dropped with a warning.
    """
    catalog = catalog or load_catalog()
    items = catalog.check(items)
    absent = [c for c in items if c not in survey.items]
    if absent:
        raise ValueError(f"items {absent} are not columns of {survey.label}; it has: {', '.join(survey.items)}")
    options = option_positions(items, catalog)
    resp = survey.responses
    long = (resp[["country", "weight", *items]]
            .melt(id_vars=["country", "weight"], var_name="item", value_name="code")
            .dropna(subset=["code"]))
    long["code"] = long["code"].astype(int)
    long = long.merge(options, on=["item", "code"], how="left")
    stray = long["pos"].isna()
    if stray.any():
        counts = long[stray].groupby(["item", "code"]).size()
        warnings.warn(f"{survey.label}: dropped {int(stray.sum())} answers whose codes are not options of "
                      f"their item: {counts.to_dict()}", stacklevel=2)
        long = long[~stray]
    long = long.astype({"pos": int, "K": int})
    long["one"] = 1
    # A cell whose item was not asked (all codes -4) has no valid answer, so it is absent here.
    return _table_from_long(long, share="weight", n="one", n_weighted="weight")




def marginal_distributions(countries=None, items=None, *, catalog: Catalog | None = None) -> pd.DataFrame:
    """Real WVS-7 weighted distributions per (country, item) from the bundled marginals.

    ``countries``: ISO alpha-3 codes (default: all 56 with marginals); ``items``: catalog codes
    (default: every catalog item with answer options that the marginals cover).
    """
    catalog = catalog or load_catalog()
    marg = package_table("wvs7_marginals.csv.gz")
    have = sorted(marg["country"].unique())
    if countries is not None:
        countries = [countries] if isinstance(countries, str) else list(countries)
        unknown = [c for c in countries if c not in have]
        if unknown:
            raise ValueError(f"no bundled WVS-7 marginals for countries {unknown}; "
                             f"countries with marginals: {', '.join(have)}")
        marg = marg[marg["country"].isin(countries)]
    covered = set(marg["item"])
    if items is None:
        items = [i.code for i in catalog if i.n_options >= 2 and i.code in covered]
    else:
        items = catalog.check(items)
        unknown = [c for c in items if c not in covered]
        if unknown:
            raise ValueError(f"items {unknown} are not in the bundled marginals; covered: "
                             f"{', '.join(sorted(covered))}")
    options = option_positions(items, catalog)
    long = marg[marg["item"].isin(items)].merge(options, on=["item", "code"], how="inner")
    return _table_from_long(long, share="share_w", n="n_code", n_weighted=None)


TARGET_SOURCES = ("auto", "marginals", "respondents")


def human_targets(survey: Survey, items, source: str = "auto", *, catalog: Catalog | None = None):
    """The human target table a run scores against, and the source it came from.

    ``source``: ``"marginals"`` (the real WVS-7 weighted marginals shipped with vpersona),
    ``"respondents"`` (weighted shares of ``survey``), or ``"auto"`` (marginals for the SYNTHETIC
    sample, whose respondents are not real, respondents otherwise). Sorted by country and item.
    """
    if source not in TARGET_SOURCES:
        raise ValueError(f"HUMAN_TARGETS={source!r}; expected one of {list(TARGET_SOURCES)}")
    used = source if source != "auto" else ("marginals" if survey.synthetic else "respondents")
    if used == "marginals":
        table = marginal_distributions(survey.countries, items, catalog=catalog)
    else:
        table = human_distributions(survey, items, catalog=catalog)
    return table.sort_values(["country", "item"]).reset_index(drop=True), used


def coverage(human: pd.DataFrame, countries, items, *, catalog: Catalog | None = None):
    """Cells per country and module, and the (country, item) pairs without a target (not asked)."""
    catalog = catalog or load_catalog()
    table = pd.crosstab(human["country"], human["item"].map(lambda c: catalog[c].module))
    have = set(zip(human["country"], human["item"]))
    return table, [(c, i) for c in countries for i in items if (c, i) not in have]
