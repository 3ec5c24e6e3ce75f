"""One persona text: a respondent's answers written as second-person sentences of a given kind
(value sentences from ``vpersona.personas.descriptors``, layouts from ``vpersona.personas.templates``)."""
from __future__ import annotations

import re

import pandas as pd

from vpersona.data.catalog import Catalog
from vpersona.personas.descriptors import Descriptors, load_descriptors
from vpersona.personas.templates import PersonaTemplates, _fields, _field_item, load_persona_templates

DIMENSION_COLUMNS = ("trad_secular", "surv_selfexp")


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
