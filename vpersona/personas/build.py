"""Personas: from sampled respondents to the persona texts an LLM is asked as (docs/method.md, section 1).

Three steps, each usable alone:

- :func:`persona_text` writes one respondent's persona of a given kind (``none``, ``country``,
  ``demographic``, ``value``, ``value+country``, ``value+demographic``; layouts and wording in
  ``vpersona/resources/persona_templates.yaml``, value sentences in ``vpersona/resources/descriptors.yaml``);
- :func:`sample_respondents` draws N respondents of a country, weighted and seeded;
- :func:`build_personas` does both for several countries and kinds, deduplicates identical texts
  (with their multiplicity) and pairs every persona with the target questions it may answer
  under leakage control -- the :class:`PersonaPlan` the simulation consumes.

Leakage rule: a target is never asked of a persona that states the target's own answer or one of
its proxies (``catalog.excluded_for(target)``). With ``leakage="drop"`` the target is asked of a
variant of each persona without those sentences, and every drop is listed in ``plan.leakage``;
with ``leakage="refuse"`` such a target is an error.
"""
from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vpersona.data.catalog import Catalog, load_catalog
from vpersona.personas.descriptors import Descriptors, load_descriptors
from vpersona.data.countries import country_names
from vpersona.data.survey import Survey

MISSING_RULES = ("drop_sentence", "skip_respondent")
LEAKAGE_MODES = ("drop", "refuse")
DIMENSION_COLUMNS = ("trad_secular", "surv_selfexp")


# --- templates ---------------------------------------------------------------------------------

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


@lru_cache(maxsize=None)
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


@lru_cache(maxsize=None)
def _load_default_templates() -> PersonaTemplates:
    text = resources.files("vpersona").joinpath("resources/persona_templates.yaml").read_text(encoding="utf-8")
    return _parse_templates(yaml.safe_load(text), "vpersona/resources/persona_templates.yaml")


def load_persona_templates(path: str | Path | None = None) -> PersonaTemplates:
    """Load the bundled persona templates, or a YAML of the same layout from ``path``."""
    if path is None:
        return _load_default_templates()
    return _parse_templates(yaml.safe_load(Path(path).read_text(encoding="utf-8")), str(path))


def country_name(iso3: str) -> str:
    try:
        return country_names()[iso3]
    except KeyError:
        raise ValueError(f"country code {iso3!r} is not in vpersona/resources/countries.csv "
                         f"(expected an ISO alpha-3 code such as SWE, USA, NGA)") from None


# --- one persona text ---------------------------------------------------------------------------

def _answer(answers: dict, item: str) -> float | None:
    value = answers.get(item)
    if value is None or pd.isna(value):
        return None
    return float(value)


def _demographic_sentences(answers, rid, catalog, templates, country_name, exclude) -> str:
    sentences = []
    for part in templates.demographic:
        for template in part:
            values = {}
            for name in _fields(template):
                item = _field_item(name, catalog, template)
                if item is None:
                    values[name] = country_name
                    continue
                code = _answer(answers, item)
                if item in exclude or code is None:
                    values = None
                    break
                if name.endswith("_code") or catalog[item].scale == "numeric":
                    values[name] = str(int(code))
                else:
                    label = templates.labels.get(item, {}).get(int(code)) or dict(catalog[item].options).get(int(code))
                    if label is None:
                        raise ValueError(f"respondent {rid}: answer code {int(code)} of {item} is not "
                                         f"one of its catalog codes {list(catalog[item].codes)}")
                    values[name] = label
            if values is not None:
                sentences.append(template.format(**values))
                break
    return " ".join(sentences)


def _value_sentences(answers, value_items, descriptors, exclude, dims, catalog) -> str:
    sentences = [descriptors.sentence(item, code) for item in value_items
                 if item not in exclude and (code := _answer(answers, item)) is not None]
    if dims is not None and not (set(exclude) & set(catalog.codes("value"))):
        sentence = descriptors.dimension_sentence(dims)
        if sentence:
            sentences.append(sentence)
    return " ".join(sentences)


def _dimension_scores(scores: pd.DataFrame | None, rid) -> dict | None:
    """The respondent's row of IW dimension scores as a dict (None without scores)."""
    if scores is None:
        return None
    if rid not in scores.index:
        raise ValueError(f"respondent {rid!r} has no row in the IW dimension scores")
    row = scores.loc[rid]
    return {c: float(row[c]) for c in DIMENSION_COLUMNS}


def _tidy(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _render(answers: dict, rid, kind, *, catalog, country_name, value_items, exclude, dims,
            descriptors, templates) -> str:
    """Persona text from a respondent's answers (a dict); inputs already checked."""
    layout = templates.layout(kind)
    if not layout.strip():
        return ""
    blocks = templates.blocks(kind)
    filled = {"preamble": templates.preamble}
    if ("country" in blocks or "demographic" in blocks) and not country_name:
        raise ValueError(f"persona kind {kind!r} names the country: pass country_name")
    if "country" in blocks:
        filled["country"] = templates.country.format(country_name=country_name)
    if "demographic" in blocks:
        filled["demographic"] = _demographic_sentences(answers, rid, catalog, templates, country_name, exclude)
    if "values" in blocks:
        filled["values"] = _value_sentences(answers, value_items, descriptors, exclude, dims, catalog)
    return _tidy(layout.format(**filled))


def persona_text(profile: pd.Series, kind: str, *, catalog: Catalog, country_name: str | None,
                 value_items, exclude=frozenset(), scores: pd.DataFrame | None = None,
                 descriptors: Descriptors | None = None, templates: PersonaTemplates | None = None) -> str:
    """The persona text of one respondent.

    ``profile``: the respondent's row of ``Survey.responses`` (its name is the respondent id).
    ``kind``: a kind of the templates file; ``none`` gives ``""`` (no system message).
    ``value_items``: items described, in this order, by the value block (each needs descriptors).
    ``exclude``: items whose sentences are left out (leakage control); if it touches an IW value
    item the dimension sentence is left out too. ``scores``: optional DataFrame indexed by
    respondent with ``trad_secular``/``surv_selfexp`` (vpersona.data.dimensions), described in words
    at the end of the value block. Unanswered items have no sentence.
    """
    templates = templates or load_persona_templates()
    descriptors = descriptors or load_descriptors()
    value_items = list(value_items)
    blocks = templates.blocks(kind)
    dims = None
    if "values" in blocks:
        descriptors.check(value_items, catalog)
        dims = _dimension_scores(scores, profile.name)
    return _render(profile.to_dict(), profile.name, kind, catalog=catalog, country_name=country_name,
                   value_items=value_items, exclude=frozenset(exclude), dims=dims,
                   descriptors=descriptors, templates=templates)


# --- sampling -----------------------------------------------------------------------------------

def usable_profiles(survey: Survey, value_items, missing: str = "drop_sentence") -> pd.Series:
    """Boolean Series (index respondent): whose value profile may be turned into a persona.

    Counted per country over the value items *asked* there (an item not asked in a country, all
    code -4, is no fault of its respondents and has no sentence for anyone there):
    ``drop_sentence``: at least half of those items answered (unanswered ones get no sentence);
    ``skip_respondent``: every one of them answered.
    """
    if missing not in MISSING_RULES:
        raise ValueError(f"missing={missing!r}; expected one of {MISSING_RULES}")
    value_items = list(value_items)
    absent = [c for c in value_items if c not in survey.responses.columns]
    if absent:
        raise ValueError(f"value item(s) {', '.join(absent)} are not columns of {survey.label}; "
                         f"load them with the survey (items present: {', '.join(survey.items)})")
    usable = pd.Series(False, index=survey.responses.index)
    for country in survey.countries:
        rows = survey.responses["country"] == country
        asked = [i for i in value_items if survey.asked(country, i)]
        answered = survey.responses.loc[rows, asked].notna().sum(axis=1)
        needed = len(asked) if missing == "skip_respondent" else (len(asked) + 1) // 2
        usable[rows] = (answered >= needed) & (len(asked) > 0)
    return usable


def _rng(seed: int, country: str) -> np.random.Generator:
    # One stream per (seed, country): a country's draw does not depend on the other countries asked.
    return np.random.default_rng([int(seed), *country.encode("ascii")])


def sample_respondents(survey: Survey, country: str, n: int, seed: int, *, value_items,
                       missing: str = "drop_sentence") -> pd.Series:
    """Draw ``n`` respondent ids of ``country`` with probability proportional to ``weight``, with
    replacement, among respondents with usable value profiles.

    Usable (``missing``): ``"drop_sentence"`` (default) keeps respondents who answered at least
    half of ``value_items``, their unanswered items simply get no sentence; ``"skip_respondent"``
    keeps only respondents who answered all of them. The generator is
    ``numpy.random.default_rng([seed, *ASCII codes of country])``, so the same inputs give the
    same draw whatever other countries are sampled. Returns a Series named ``respondent`` indexed
    by ``draw`` (0..n-1).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r}: expected a positive number of personas per country")
    sub = survey.country(country)
    usable = usable_profiles(sub, value_items, missing)
    eligible = sub.responses[usable]
    if eligible.empty:
        raise ValueError(f"no respondent of {country} in {survey.label} has a usable value profile "
                         f"(missing={missing!r}, {len(sub.responses)} respondents, value items "
                         f"{', '.join(value_items)})")
    w = eligible["weight"].to_numpy(dtype=float)
    if np.isnan(w).any() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights of {country} in {survey.label} must be non-negative numbers with a "
                         f"positive sum")
    idx = _rng(seed, country).choice(len(eligible), size=int(n), replace=True, p=w / w.sum())
    return pd.Series(eligible.index.to_numpy()[idx], name="respondent",
                     index=pd.RangeIndex(int(n), name="draw"))


# --- the persona plan ---------------------------------------------------------------------------

@dataclass
class PersonaPlan:
    """What the simulation asks: distinct personas, (persona, target) pairs, leakage drops, draws.

    ``personas``: persona_id, country, kind, text, multiplicity, respondents, excluded -- one row
    per distinct text of a country x kind x leakage variant (``excluded``: ';'-joined items left
    out); multiplicities sum to N in each variant. ``pairs``: persona_id, country, kind, item,
    multiplicity -- persona-major. ``leakage``: item, kind, dropped_items, n_personas,
    dimensions_dropped. ``draws``: country, draw, respondent. ``settings``: the inputs.
    """

    personas: pd.DataFrame
    pairs: pd.DataFrame
    leakage: pd.DataFrame
    draws: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Per country x kind: draws, distinct personas (full variant), all texts, questions to ask."""
        keys = ["country", "kind"]
        full = self.personas[self.personas["excluded"] == ""].groupby(keys, sort=False).size()
        texts = self.personas.drop_duplicates(keys + ["text"]).groupby(keys, sort=False).size()
        pairs = self.pairs.groupby(keys, sort=False).size()
        draws = self.draws.groupby("country", sort=False).size()
        out = pd.DataFrame({"n_personas": full, "n_texts": texts, "n_pairs": pairs}).fillna(0).astype(int)
        out.insert(0, "n_draws", out.index.get_level_values("country").map(draws).astype(int))
        return out.reset_index()


def persona_id(kind: str, text: str) -> str:
    """Stable id of a persona: first 12 hex digits of sha256(kind + newline + text)."""
    return hashlib.sha256(f"{kind}\n{text}".encode("utf-8")).hexdigest()[:12]


def _persona_items(kind, templates, catalog, value_items, scores) -> list[str]:
    """Items whose answers a persona of ``kind`` can state (what leakage control looks at)."""
    blocks = templates.blocks(kind)
    items = []
    if "demographic" in blocks:
        items += templates.demographic_items(catalog)
    if "values" in blocks:
        items += list(value_items)
        if scores is not None:  # the dimension sentence summarises all IW value items
            items += catalog.codes("value")
    return list(dict.fromkeys(items))


def build_personas(survey: Survey, countries, n: int, seed: int, kinds, targets, *,
                   catalog: Catalog | None = None, value_items=None, leakage: str = "drop",
                   missing: str = "drop_sentence", scores: pd.DataFrame | None = None,
                   descriptors: Descriptors | None = None,
                   templates: PersonaTemplates | None = None) -> PersonaPlan:
    """Sample ``n`` respondents per country, write their personas of each kind, deduplicate, and
    pair each persona with the targets it may answer (see the module docstring for leakage).

    ``value_items`` default to the ten IW items (``catalog.codes("value")``); any catalog items with
    descriptors will do. The same respondents are drawn for every kind, so kinds compare on equal
    footing. Same inputs and seed give identical DataFrames.
    """
    catalog = catalog or load_catalog()
    templates = templates or load_persona_templates()
    descriptors = descriptors or load_descriptors()
    countries = [countries] if isinstance(countries, str) else list(countries)
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    targets = catalog.check(targets)
    value_items = catalog.check(value_items if value_items is not None else catalog.codes("value"))
    if leakage not in LEAKAGE_MODES:
        raise ValueError(f"leakage={leakage!r}; expected one of {LEAKAGE_MODES}")
    for kind in kinds:
        templates.layout(kind)
    if any("values" in templates.blocks(k) for k in kinds):
        descriptors.check(value_items, catalog)
    if scores is not None:
        absent = [c for c in DIMENSION_COLUMNS if c not in scores.columns]
        if absent:
            raise ValueError(f"scores lack column(s) {absent}; expected vpersona.data.dimensions scores")
    if len(set(countries)) != len(countries) or len(set(kinds)) != len(kinds):
        raise ValueError(f"countries {countries} and kinds {kinds} must not repeat")

    # Leakage set of each (target, kind), restricted to what the kind's persona can state.
    exclusion = {}
    for kind in kinds:
        stated = _persona_items(kind, templates, catalog, value_items, scores)
        for t in targets:
            exclusion[t, kind] = tuple(c for c in stated if c in catalog.excluded_for(t))
    offending = {t: sorted({c for k in kinds for c in exclusion[t, k]}) for t in targets}
    offending = {t: v for t, v in offending.items() if v}
    if leakage == "refuse" and offending:
        raise ValueError("leakage='refuse': these targets would be asked of personas stating their own "
                         "answer or a proxy of it: " + "; ".join(f"{t} (persona items {', '.join(v)})"
                                                                  for t, v in offending.items())
                         + ". Remove them from the targets or value items, or use leakage='drop'.")

    names = {c: country_name(c) for c in countries}
    persona_rows, pair_rows, draw_rows = [], [], []
    for country in countries:
        ids = sample_respondents(survey, country, n, seed, value_items=value_items, missing=missing)
        draw_rows += [(country, d, r) for d, r in ids.items()]
        answers = survey.country(country).responses.loc[ids.unique()].to_dict("index")
        dims = {r: _dimension_scores(scores, r) for r in answers}
        for kind in kinds:
            variants = list(dict.fromkeys([(), *(exclusion[t, kind] for t in targets)]))
            rows_by_variant = {}
            for excluded in variants:
                text_of = {r: _render(a, r, kind, catalog=catalog, country_name=names[country],
                                      value_items=value_items, exclude=frozenset(excluded), dims=dims[r],
                                      descriptors=descriptors, templates=templates)
                           for r, a in answers.items()}
                groups: dict[str, list[str]] = {}
                for r in ids:
                    groups.setdefault(text_of[r], []).append(str(r))
                rows = [dict(persona_id=persona_id(kind, text), country=country, kind=kind, text=text,
                             multiplicity=len(members), respondents=";".join(members),
                             excluded=";".join(excluded)) for text, members in groups.items()]
                rows_by_variant[excluded] = {row["persona_id"]: row for row in rows}
                persona_rows += rows
            # Persona-major: each distinct text once, with every target it answers.
            order = list(dict.fromkeys(pid for rows in rows_by_variant.values() for pid in rows))
            for pid in order:
                for t in targets:
                    row = rows_by_variant[exclusion[t, kind]].get(pid)
                    if row is not None:
                        pair_rows.append((pid, country, kind, t, row["multiplicity"]))

    personas = pd.DataFrame(persona_rows, columns=["persona_id", "country", "kind", "text", "multiplicity",
                                                   "respondents", "excluded"])
    pairs = pd.DataFrame(pair_rows, columns=["persona_id", "country", "kind", "item", "multiplicity"])
    leak_rows = []
    for t in targets:
        for kind in kinds:
            if exclusion[t, kind]:
                dropped = ";".join(exclusion[t, kind])
                n_personas = int(((personas["kind"] == kind) & (personas["excluded"] == dropped)).sum())
                dims_dropped = scores is not None and bool(set(exclusion[t, kind]) & set(catalog.codes("value")))
                leak_rows.append((t, kind, dropped, n_personas, dims_dropped))
    leakage_table = pd.DataFrame(leak_rows, columns=["item", "kind", "dropped_items", "n_personas",
                                                     "dimensions_dropped"])
    draws = pd.DataFrame(draw_rows, columns=["country", "draw", "respondent"])
    settings = dict(countries=countries, n=int(n), seed=int(seed), kinds=kinds, targets=targets,
                    value_items=value_items, leakage=leakage, missing=missing,
                    dimension_scores=scores is not None, descriptors=descriptors.source,
                    templates=templates.source)
    return PersonaPlan(personas, pairs, leakage_table, draws, settings)
