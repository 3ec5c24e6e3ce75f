"""The item catalog: WVS-7 questions, their answer options, scale types and leakage proxies.

The catalog is package data (``vpersona/resources/items.yaml``), built from the WVS-7 codebook; see
``vpersona/resources/README.md`` for sources. Every other module asks the catalog what an item is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from vpersona.core.distributions import KMAX
from vpersona.core.package_data import read_yaml, resource_yaml

ROLES = ("value", "component", "target", "demographic")
SCALES = ("ordinal", "nominal", "binary", "numeric")


@dataclass(frozen=True)
class Item:
    """One WVS item. ``options`` are ``(code, label)`` pairs in scale order."""

    code: str
    role: str
    module: str
    scale: str
    text: str
    label: str
    options: tuple[tuple[int, str], ...] = ()
    proxies: tuple[str, ...] = ()
    derived: str | None = None

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(c for c, _ in self.options)

    @property
    def n_options(self) -> int:
        return len(self.options)

    @property
    def is_ordered(self) -> bool:
        """Ordinal and binary items have a meaningful mean answer; nominal ones do not."""
        return self.scale in ("ordinal", "binary")


@dataclass(frozen=True, eq=False)  # hashed by identity: functools.cache keys on it
class Catalog:
    items: dict[str, Item] = field(default_factory=dict)

    def __getitem__(self, code: str) -> Item:
        try:
            return self.items[code]
        except KeyError:
            raise KeyError(f"item {code!r} is not in the vpersona catalog; known items: "
                           f"{', '.join(sorted(self.items, key=_sort_key))}") from None

    def __contains__(self, code: str) -> bool:
        return code in self.items

    def __iter__(self):
        return iter(self.items.values())

    def __len__(self) -> int:
        return len(self.items)

    def codes(self, role: str | None = None) -> list[str]:
        """Item codes in catalog order, optionally only those of one role."""
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
        return [i.code for i in self if role is None or i.role == role]

    def check(self, codes, role: str | None = None) -> list[str]:
        """Return ``codes`` as a list after checking each is in the catalog (and of ``role``)."""
        codes = [codes] if isinstance(codes, str) else list(codes)
        for c in codes:
            item = self[c]
            if role is not None and item.role != role:
                raise ValueError(f"item {c} has role {item.role!r}, expected {role!r}")
        return codes

    def excluded_for(self, target: str) -> set[str]:
        """Items that must not appear in a persona used to predict ``target`` (leakage control):
        the target itself, its declared proxies, and items that declare the target as a proxy."""
        out = {target, *self[target].proxies}
        out |= {i.code for i in self if target in i.proxies}
        return out


def _sort_key(code: str):
    head = code.rstrip("0123456789")
    tail = code[len(head):]
    return (head, int(tail) if tail else 0)


def _parse(data: dict) -> Catalog:
    items = {}
    for raw in data["items"]:
        missing = {"code", "role", "module", "scale", "text"} - set(raw)
        if missing:
            raise ValueError(f"catalog entry {raw.get('code', raw)} lacks {sorted(missing)}")
        if raw["role"] not in ROLES or raw["scale"] not in SCALES:
            raise ValueError(f"catalog entry {raw['code']}: role must be one of {ROLES}, scale one of {SCALES}")
        options = tuple((int(o["code"]), str(o["label"])) for o in raw.get("options", []))
        if raw["scale"] != "numeric" and len(options) < 2:
            raise ValueError(f"catalog entry {raw['code']} has fewer than two answer options")
        items[raw["code"]] = Item(code=raw["code"], role=raw["role"], module=raw["module"], scale=raw["scale"],
                                  text=raw["text"], label=raw.get("label", raw["code"]), options=options,
                                  proxies=tuple(raw.get("proxies", [])), derived=raw.get("derived"))
    for item in items.values():
        unknown = [p for p in item.proxies if p not in items]
        if unknown:
            raise ValueError(f"catalog entry {item.code} declares unknown proxies {unknown}")
    return Catalog(items)


@cache
def _load_default() -> Catalog:
    return _parse(resource_yaml("items.yaml"))


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load the bundled catalog, or a catalog YAML of the same layout from ``path``."""
    if path is None:
        return _load_default()
    return _parse(read_yaml(path))


def option_positions(items, catalog: Catalog) -> pd.DataFrame:
    """Long table ``item, code, pos, K``: each answer code's 0-based position in catalog order."""
    rows = []
    for code in catalog.check(items):
        item = catalog[code]
        if item.n_options < 2:
            raise ValueError(f"item {code} ({item.scale}) has no answer options, so it has no distribution")
        if item.n_options > KMAX:
            raise ValueError(f"item {code} has {item.n_options} options; at most {KMAX} are supported")
        rows += [(code, int(c), pos, item.n_options) for pos, c in enumerate(item.codes)]
    return pd.DataFrame(rows, columns=["item", "code", "pos", "K"])


def ordered_mask(items, catalog: Catalog | None = None) -> np.ndarray:
    """True for items whose options are ordered (ordinal or binary scale), per element of ``items``."""
    catalog = catalog or load_catalog()
    items = pd.Series(np.asarray(items, dtype=object))
    lookup = {code: catalog[code].is_ordered for code in items.unique()}
    return items.map(lookup).to_numpy(dtype=bool)


def resolve_targets(target_items, catalog: Catalog) -> list[str]:
    """A run's ``TARGET_ITEMS``: ``"all"`` (every target item of the catalog) or a list of codes."""
    return catalog.codes("target") if target_items == "all" else catalog.check(list(target_items), role="target")


def items_table(codes, catalog: Catalog) -> pd.DataFrame:
    """One row per item: module, scale, number of options K, short label and leakage proxies."""
    return pd.DataFrame([{"item": c, "module": catalog[c].module, "scale": catalog[c].scale,
                          "K": catalog[c].n_options, "label": catalog[c].label,
                          "proxies": ", ".join(catalog[c].proxies)} for c in codes])
