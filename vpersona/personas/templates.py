"""Persona templates: the layout of each persona kind and the wording of its country and demographic
sentences (``vpersona/resources/persona_templates.yaml``, layout documented there)."""
from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path


from vpersona.core.package_data import read_yaml, resource_yaml
from vpersona.data.catalog import Catalog
from vpersona.data.countries import country_names


@dataclass(frozen=True)
class PersonaTemplates:
    """The parsed ``persona_templates.yaml`` (layout documented in that file)."""

    preamble: str
    kinds: dict[str, str]
    country: str
    demographic: tuple[tuple[str, ...], ...]
    labels: dict[str, dict[int, str]]
    source: str

    def layout(self, kind: str) -> str:
        if kind not in self.kinds:
            raise ValueError(f"unknown persona kind {kind!r}; kinds in {self.source}: {', '.join(self.kinds)}")
        return self.kinds[kind]

    def blocks(self, kind: str) -> frozenset[str]:
        """Blocks ({preamble}, {country}, {demographic}, {values}) the layout of ``kind`` uses."""
        return _fields(self.layout(kind))

    def demographic_items(self, catalog: Catalog) -> list[str]:
        """Catalog items the demographic sentences can state."""
        out = []
        for part in self.demographic:
            for template in part:
                for f in sorted(_fields(template)):
                    item = _field_item(f, catalog, template)
                    if item is not None and item not in out:
                        out.append(item)
        return out


@cache
def _fields(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _field_item(name: str, catalog: Catalog, template: str) -> str | None:
    """The catalog item a template field refers to (``Q260`` or ``Q288_code``), None for country_name."""
    if name == "country_name":
        return None
    item = name[: -len("_code")] if name.endswith("_code") else name
    if item not in catalog:
        raise ValueError(f"persona template {template!r} uses field {{{name}}}, which is neither "
                         f"{{country_name}} nor a catalog item (optionally with _code)")
    return item


def _parse_templates(data: dict, source: str) -> PersonaTemplates:
    missing = {"preamble", "kinds", "country", "demographic"} - set(data or {})
    if missing:
        raise ValueError(f"{source} is not a persona templates file: it lacks {sorted(missing)}")
    unknown = {k: _fields(v) - {"preamble", "country", "demographic", "values"} for k, v in data["kinds"].items()}
    unknown = {k: v for k, v in unknown.items() if v}
    if unknown:
        raise ValueError(f"persona kinds in {source} use unknown blocks {unknown}; "
                         f"blocks are preamble, country, demographic, values")
    return PersonaTemplates(
        preamble=str(data["preamble"]).strip(),
        kinds={str(k): str(v) for k, v in data["kinds"].items()},
        country=str(data["country"]),
        demographic=tuple(tuple(str(t) for t in part) for part in data["demographic"]),
        labels={str(item): {int(c): str(t) for c, t in codes.items()}
                for item, codes in (data.get("labels") or {}).items()},
        source=source,
    )


@cache
def _load_default_templates() -> PersonaTemplates:
    return _parse_templates(resource_yaml("persona_templates.yaml"), "vpersona/resources/persona_templates.yaml")


def load_persona_templates(path: str | Path | None = None) -> PersonaTemplates:
    """Load the bundled persona templates, or a YAML of the same layout from ``path``."""
    if path is None:
        return _load_default_templates()
    return _parse_templates(read_yaml(path), str(path))


def country_name(iso3: str) -> str:
    try:
        return country_names()[iso3]
    except KeyError:
        raise ValueError(f"country code {iso3!r} is not in vpersona/resources/countries.csv "
                         f"(expected an ISO alpha-3 code such as SWE, USA, NGA)") from None
