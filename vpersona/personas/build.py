"""Personas: from sampled respondents to the persona texts an LLM is asked as (docs/method.md, personas).

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
from dataclasses import dataclass, field

import pandas as pd

from vpersona.data.catalog import Catalog, load_catalog
from vpersona.data.survey import Survey
from vpersona.personas.descriptors import Descriptors, load_descriptors
from vpersona.personas.sampling import MISSING_RULES, sample_respondents  # noqa: F401
from vpersona.personas.templates import PersonaTemplates, country_name, load_persona_templates
from vpersona.personas.texts import DIMENSION_COLUMNS, _dimension_scores, _render, persona_text  # noqa: F401

LEAKAGE_MODES = ("drop", "refuse")


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

    def asked(self, human: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """The pairs whose question has a human target in its country, and how many were dropped
        (a question not asked in a country has no target there, so it is not simulated)."""
        has_target = pd.MultiIndex.from_frame(human[["country", "item"]])
        keep = pd.MultiIndex.from_frame(self.pairs[["country", "item"]]).isin(has_target)
        return self.pairs[keep].reset_index(drop=True), int((~keep).sum())

    def side_by_side(self, respondent=None) -> pd.DataFrame:
        """The full persona texts of every kind for one respondent (default: the first draw), one
        row per kind, in the variant that leaves nothing out."""
        respondent = str(self.draws["respondent"].iloc[0] if respondent is None else respondent)
        full = self.personas[self.personas["excluded"] == ""]
        mine = full[full["respondents"].astype(str).str.split(";").map(lambda ids: respondent in ids)]
        out = mine[["kind", "country", "multiplicity", "text"]].drop_duplicates("kind").reset_index(drop=True)
        out["text"] = out["text"].replace("", "(no persona: the question is asked without a system message)")
        return out.assign(respondent=respondent)


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
