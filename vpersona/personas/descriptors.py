"""Value descriptors: one second-person sentence per value item and answer level or band.

The sentences are data (``vpersona/resources/descriptors.yaml``, layout documented there), so rewording
a band or describing more value items (e.g. a larger battery Q1-Q17, Q27-Q41) needs no code. This
module loads them, checks them against the catalog and picks the sentence for an answer; it also
puts a respondent's two Inglehart-Welzel dimension scores into words.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path


from vpersona.core.package_data import read_yaml, resource_yaml
from vpersona.data.catalog import Catalog

DIMENSIONS = ("trad_secular", "surv_selfexp")


@dataclass(frozen=True)
class Band:
    """Answer codes described by one sentence."""

    codes: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class Descriptors:
    """Descriptor sentences per item (``items``) and the dimension wording (``dimensions``)."""

    items: dict[str, tuple[Band, ...]]
    dimension_template: str
    dimension_bands: dict[str, tuple[tuple[float, str], ...]]
    source: str

    def check(self, codes, catalog: Catalog) -> None:
        """Raise ValueError unless every item in ``codes`` has descriptors covering each of its
        catalog answer codes exactly once, with distinct sentences."""
        missing = [c for c in codes if c not in self.items]
        if missing:
            raise ValueError(f"no value descriptors for item(s) {', '.join(missing)} in {self.source}; "
                             f"items with descriptors: {', '.join(self.items)}. Add entries for them "
                             f"(layout in vpersona/resources/descriptors.yaml) or choose other value items.")
        for code in codes:
            expected = set(catalog[code].codes)
            bands = self.items[code]
            seen = [c for b in bands for c in b.codes]
            doubled = sorted({c for c in seen if seen.count(c) > 1})
            unknown = sorted(set(seen) - expected)
            uncovered = sorted(expected - set(seen))
            if doubled or unknown or uncovered:
                raise ValueError(f"descriptors of {code} in {self.source} must cover the catalog codes "
                                 f"{sorted(expected)} exactly once; codes described twice: {doubled}, "
                                 f"not in the catalog: {unknown}, not described: {uncovered}")
            texts = [b.text for b in bands]
            if len(set(texts)) != len(texts):
                raise ValueError(f"descriptors of {code} in {self.source} repeat a sentence; each band "
                                 f"needs its own wording")

    def sentence(self, item: str, code: float) -> str:
        """The sentence for answer ``code`` of ``item`` (call :meth:`check` first)."""
        for band in self.items[item]:
            if int(code) in band.codes:
                return band.text
        raise ValueError(f"answer code {code!r} of item {item} has no descriptor in {self.source}; "
                         f"described codes: {[c for b in self.items[item] for c in b.codes]}")

    def dimension_sentence(self, scores: dict[str, float]) -> str | None:
        """The two IW dimension scores in words, or None when either score is missing."""
        if not self.dimension_template or not all(self.dimension_bands.get(d) for d in DIMENSIONS):
            raise ValueError(f"{self.source} has no `dimensions` section (template and bands for "
                             f"{', '.join(DIMENSIONS)}) to describe IW dimension scores")
        words = {}
        for dim in DIMENSIONS:
            value = scores.get(dim)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return None
            words[dim] = next(text for upper, text in self.dimension_bands[dim] if value < upper)
        return self.dimension_template.format(**words)


def _parse(data: dict, source: str) -> Descriptors:
    if not isinstance(data, dict) or not isinstance(data.get("items"), dict):
        raise ValueError(f"{source} is not a descriptors file: expected a mapping with an `items` mapping")
    items = {}
    for code, entries in data["items"].items():
        bands = []
        for entry in entries or []:
            if not isinstance(entry, dict) or "codes" not in entry or "text" not in entry:
                raise ValueError(f"descriptor entry of {code} in {source} needs `codes` and `text`: {entry!r}")
            codes = entry["codes"] if isinstance(entry["codes"], list) else [entry["codes"]]
            bands.append(Band(tuple(int(c) for c in codes), str(entry["text"]).strip()))
        items[str(code)] = tuple(bands)
    dims = data.get("dimensions") or {}
    bands = {}
    for dim in DIMENSIONS:
        raw = (dims.get("bands") or {}).get(dim, [])
        uppers = [float(b["upper"]) for b in raw]
        if raw and (uppers != sorted(uppers) or uppers[-1] != math.inf):
            raise ValueError(f"dimension bands of {dim} in {source} must have increasing `upper` "
                             f"bounds ending with .inf; got {uppers}")
        bands[dim] = tuple((float(b["upper"]), str(b["text"])) for b in raw)
    return Descriptors(items, str(dims.get("template", "")), bands, source)


@cache
def _load_default() -> Descriptors:
    return _parse(resource_yaml("descriptors.yaml"), "vpersona/resources/descriptors.yaml")


def load_descriptors(path: str | Path | None = None) -> Descriptors:
    """Load the bundled descriptors, or a descriptors YAML of the same layout from ``path``."""
    if path is None:
        return _load_default()
    return _parse(read_yaml(path), str(path))
