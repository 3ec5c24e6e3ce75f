"""How the simulated backend reads a prompt: the question, its labelled options, and the persona.

Everything comes from the message text, as a model would see it; nothing from hidden ids:

- the **question** is the user message up to its first blank line, matched to the catalog item
  whose text it is (a question whose options all repeat its text, e.g. the ``N/A`` prompt of
  contextual calibration, has no content); the **options** are the lines ``<label>. <text>``, each matched to the catalog
  option it shows (so any presented order -- fixed, reversed, random -- is read correctly);
- the **persona** (system message) is scanned for the value descriptor sentences of
  ``vpersona/resources/descriptors.yaml`` (each gives the item and the band of answer codes it
  describes) and for the country sentence "You live in <name>." (name -> ISO alpha-3 through
  ``vpersona/resources/countries.csv``). Demographic sentences other than the country, and the IW
  dimension sentence, are not read.

A sentence removed from a persona (leakage control) is simply not there to be read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from vpersona.data.catalog import Catalog, load_catalog
from vpersona.data.countries import country_names
from vpersona.llm.prompts import Templates, _option_texts, load_templates
from vpersona.personas.descriptors import Descriptors, load_descriptors

OPTION_LINE = re.compile(r"^(\S)\. (.*)$")
COUNTRY_SENTENCE = re.compile(r"You live in ([^.]+)\.")


@dataclass(frozen=True)
class Question:
    """A read user message: the catalog ``item`` (None for a content-free prompt), the presented
    ``labels`` and, for each presented position, the catalog option index it shows
    (``option_index``); ``verbalized`` when the message asks for a JSON object of probabilities."""

    item: str | None
    labels: tuple[str, ...]
    option_index: tuple[int, ...]
    verbalized: bool


@dataclass(frozen=True)
class PersonaReading:
    """What a persona text states: ``country`` (ISO alpha-3 or None) and ``values`` (item -> the
    mean answer code of the band its sentence describes)."""

    country: str | None
    values: tuple[tuple[str, float], ...]

    @property
    def value_dict(self) -> dict[str, float]:
        return dict(self.values)


class Reader:
    """Reads prompts rendered with ``templates`` about ``catalog`` items with ``descriptors``."""

    def __init__(self, catalog: Catalog | None = None, descriptors: Descriptors | None = None,
                 templates: Templates | None = None):
        self.catalog = catalog or load_catalog()
        self.descriptors = descriptors or load_descriptors()
        self.templates = templates or load_templates()
        self.item_of_text = {self.catalog[c].text: c for c in self.catalog.codes()}
        self._options = {}
        # longest sentences first: a sentence contained in a longer one is not read inside it
        self.sentences = sorted(((b.text, item, sum(b.codes) / len(b.codes))
                                 for item, bands in self.descriptors.items.items() for b in bands),
                                key=lambda s: -len(s[0]))
        self.iso3_of_name = {name: iso for iso, name in country_names().items()}
        verbalized = self.templates.user["verbalized"]
        self.verbalized_marker = verbalized[verbalized.index("{options}") + len("{options}"):].split("{")[0].strip()

    def band_value(self, item: str, code: float) -> float:
        """The value a persona sentence conveys for answer ``code`` of ``item`` (its band's mean code)."""
        for band in self.descriptors.items[item]:
            if int(code) in band.codes:
                return sum(band.codes) / len(band.codes)
        raise ValueError(f"answer code {code!r} of {item} has no descriptor band in {self.descriptors.source}")

    def option_texts(self, item: str) -> dict[str, int]:
        if item not in self._options:
            texts = _option_texts(self.catalog[item], self.templates)
            self._options[item] = {t: i for i, t in enumerate(texts)}
        return self._options[item]

    def question(self, user: str) -> Question:
        text = user.split("\n\n", 1)[0].strip()
        item = self.item_of_text.get(text)
        if item is None:
            return self._content_free(text, user)
        index_of = self.option_texts(item)
        labels, index = [], []
        for line in user.splitlines():
            m = OPTION_LINE.match(line.strip())
            if m and m.group(2) in index_of:
                labels.append(m.group(1))
                index.append(index_of[m.group(2)])
        if sorted(index) != list(range(self.catalog[item].n_options)):
            raise ValueError(f"the simulated backend could not read the options of {item} in the prompt")
        verbalized = bool(self.verbalized_marker) and self.verbalized_marker in user
        return Question(item, tuple(labels), tuple(index), verbalized)

    def _content_free(self, text: str, user: str) -> Question:
        """A question whose text and options all say the same thing (contextual calibration's
        ``N/A`` prompt) has no content: item None. Any other unknown question is an error."""
        # an empty content-free input leaves "A." with nothing after it
        stripped = [line.strip() for line in user.splitlines()]
        lines = [m for line in stripped if (m := OPTION_LINE.match(line + " " if line[1:] == "." else line))]
        if lines and all(m.group(2) == text for m in lines):
            return Question(None, tuple(m.group(1) for m in lines), tuple(range(len(lines))), False)
        raise ValueError(f"the simulated backend answers only catalog questions; it cannot read {text[:80]!r}")

    @lru_cache(maxsize=100_000)
    def persona(self, text: str) -> PersonaReading:
        remaining, values = text or "", {}
        for sentence, item, value in self.sentences:
            if sentence in remaining:
                values[item] = value
                remaining = remaining.replace(sentence, "\0")
        m = COUNTRY_SENTENCE.search(remaining)
        country = self.iso3_of_name.get(m.group(1).strip()) if m else None
        return PersonaReading(country, tuple(sorted(values.items())))
