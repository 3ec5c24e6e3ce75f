"""Held-out evaluation of calibrators: seeded splits of (country, item) cells, and cross-fitting.

A split turns a table of cells (columns ``country``, ``item``) into folds ``(fit_cells,
test_cells)``, both DataFrames of (country, item) pairs:

- :class:`ItemKFold` — k folds over items: fit on the other items (all countries), test on the
  fold's items;
- :class:`LeaveCountriesOut` — country groups (given, e.g. cultural zones, or n random groups):
  fit on the other countries, test on the group's countries;
- :class:`ItemCountryFold` — both at once: test on (fold items x group countries), fit only on
  (other items x other countries), so neither the item nor the country was seen in fitting.

Every split is a partition of the cells: each cell is tested exactly once. :func:`cross_fit` fits
a calibrator on each fold's fit cells and applies it to the test cells, so every calibrated number
is scored on cells it was not fitted on.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from vpersona.core.seeds import rng

CELL = ["country", "item"]


def _cells(table: pd.DataFrame) -> pd.DataFrame:
    lacking = [c for c in CELL if c not in table.columns]
    if lacking:
        raise ValueError(f"cannot split a table without columns {lacking}")
    return table[CELL].drop_duplicates().sort_values(CELL).reset_index(drop=True)


def _shuffled_groups(values, n_groups: int, seed: int, what: str) -> list[list]:
    values = sorted(set(values))
    if not 2 <= n_groups <= len(values):
        raise ValueError(f"cannot make {n_groups} folds of {len(values)} {what}; expected 2..{len(values)}")
    order = rng(seed).permutation(len(values))
    return [sorted(values[i] for i in chunk) for chunk in np.array_split(order, n_groups)]


class ItemKFold:
    """k folds over items (seeded shuffle, near-equal sizes)."""

    def __init__(self, k: int = 5, seed: int = 0):
        self.k, self.seed = k, seed

    def groups(self, cells: pd.DataFrame) -> list[list[str]]:
        return _shuffled_groups(cells["item"], self.k, self.seed, "items")

    def split(self, table: pd.DataFrame):
        cells = _cells(table)
        for items in self.groups(cells):
            test = cells["item"].isin(items)
            yield cells[~test].reset_index(drop=True), cells[test].reset_index(drop=True)


class LeaveCountriesOut:
    """Leave one group of countries out per fold.

    ``groups``: a mapping country -> group name (dict or Series, e.g. cultural zones from
    :func:`vpersona.evaluate.crosscultural.zones`), or an int n for n seeded random groups (n = number of
    countries gives leave-one-country-out). Countries absent from a given mapping are an error.
    """

    def __init__(self, groups=5, seed: int = 0):
        self.groups_arg, self.seed = groups, seed

    def groups(self, cells: pd.DataFrame) -> list[list[str]]:
        countries = sorted(cells["country"].unique())
        if isinstance(self.groups_arg, (int, np.integer)):
            return _shuffled_groups(countries, int(self.groups_arg), self.seed, "countries")
        mapping = pd.Series(self.groups_arg)
        unknown = [c for c in countries if c not in mapping.index]
        if unknown:
            raise ValueError(f"countries {unknown} have no group in the LeaveCountriesOut mapping")
        mapping = mapping[countries]
        if mapping.nunique() < 2:
            raise ValueError("LeaveCountriesOut needs at least two country groups among the cells")
        return [sorted(m.index) for _, m in mapping.groupby(mapping, sort=True)]

    def split(self, table: pd.DataFrame):
        cells = _cells(table)
        for countries in self.groups(cells):
            test = cells["country"].isin(countries)
            yield cells[~test].reset_index(drop=True), cells[test].reset_index(drop=True)


class ItemCountryFold:
    """Held-out items *and* countries: test (fold items x group countries), fit (other x other)."""

    def __init__(self, items: ItemKFold, countries: LeaveCountriesOut):
        self.items, self.countries = items, countries

    def split(self, table: pd.DataFrame):
        cells = _cells(table)
        for items in self.items.groups(cells):
            for countries in self.countries.groups(cells):
                in_items, in_countries = cells["item"].isin(items), cells["country"].isin(countries)
                yield (cells[~in_items & ~in_countries].reset_index(drop=True),
                       cells[in_items & in_countries].reset_index(drop=True))


def _restrict(table: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    return table.merge(cells, on=CELL, how="inner")


def cross_fit(calibrator, pred: pd.DataFrame, truth: pd.DataFrame, split, *, by=None, **fit_kwargs):
    """Fit a clone of ``calibrator`` on each fold's fit cells, transform the fold's test cells.

    ``calibrator``: any estimator with ``fit(pred, truth)`` and ``transform(pred)`` (the
    temperature takes the human table as ``truth``, persona mixing the respondents' answers).

    ``by``: column(s) of ``pred`` (e.g. ``"kind"`` or ``"method"``) to cross-fit separately, one
    calibrator per value. Returns ``(calibrated, params)``: the calibrated held-out predictions
    (pred's columns + ``fold``), each test cell once, and one row of fitted parameters per fold
    (and ``by`` value).
    """
    by = [] if by is None else ([by] if isinstance(by, str) else list(by))
    parts, params = [], []
    groups = pred.groupby(by, sort=True) if by else [((), pred)]
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        for fold, (fit_cells, test_cells) in enumerate(split.split(sub)):
            fitted = clone(calibrator).fit(_restrict(sub, fit_cells), truth, **fit_kwargs)
            applied = fitted.transform(_restrict(sub, test_cells))
            applied["fold"] = fold
            parts.append(applied)
            params.append({**dict(zip(by, key)), "fold": fold, "n_fit_cells": len(fit_cells),
                           "n_test_cells": len(test_cells), **fitted.params})
    return pd.concat(parts, ignore_index=True), pd.DataFrame(params)


SPLITS = ("items", "countries", "both")


def make_split(kind: str, k_folds: int, cells: pd.DataFrame, seed: int = 0):
    """The split a run's ``SPLIT`` parameter names, with ``k_folds`` capped by what ``cells`` has.

    ``items``: :class:`ItemKFold`; ``countries``: :class:`LeaveCountriesOut` with random groups;
    ``both``: :class:`ItemCountryFold` of the two (neither the item nor the country seen in fitting).
    """
    cells = _cells(cells)
    n_items, n_countries = cells["item"].nunique(), cells["country"].nunique()
    if kind not in SPLITS:
        raise ValueError(f"SPLIT={kind!r}; expected one of {list(SPLITS)}")
    items = ItemKFold(min(k_folds, n_items), seed=seed)
    countries = LeaveCountriesOut(min(k_folds, n_countries), seed=seed)
    return {"items": items, "countries": countries, "both": ItemCountryFold(items, countries)}[kind]
