"""Turn a model's reply into one persona's answer distribution (docs/method.md, section 2).

Three estimators, each with ``make_query(prompt, **params) -> Query`` and
``parse(reply, prompt) -> Answer``:

- ``logprobs`` (default): one output token with ``top_logprobs``; the probability of each label is
  the summed probability of the label token and its whitespace variants ("A", " A", "A\n", ...;
  not "a" or " a": a lowercase "a" is mostly the article, and counting it would be a vote for the
  first option); the total is the *covered mass*, the distribution is renormalised over labels
  and flagged ``low_mass`` below ``min_mass``. Labels outside the top ``top_logprobs`` tokens
  count as 0. ``contextual=True`` divides out the model's label prior before renormalising
  (:mod:`vpersona.llm.contextual`; the grid asks the content-free prompts and passes the prior).
- ``sample``: ``n`` completions at temperature ``temperature``; each is parsed for a leading label
  (capital, as the logprobs estimator reads labels; not the article of "A good question");
  unparseable ones are counted in ``n_invalid``, never guessed.
- ``verbalized``: the model is asked for a JSON object label -> probability; a valid object (numbers
  >= 0, some positive mass) is normalised, missing labels count 0, keys that are not labels are
  off-label mass; anything else counts as invalid.

Refusals and garbage never raise: an answer with nothing valid has ``dist`` all NaN, a flag, and is
excluded from aggregation downstream. Distributions are always in *catalog* option order.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from vpersona.llm.backends.base import Query, Reply
from vpersona.llm.contextual import divide_prior
from vpersona.llm.prompts import Prompt

FLAGS = ("low_mass", "low_mass_dropped", "refusal", "unparseable", "no_logprobs", "no_prior", "prior_low_mass",
         "prior_floored")
# Logprobs replies whose covered mass is below MIN_MASS are flagged ``low_mass`` and, by LOW_MASS
# policy, ``drop``ped from the aggregate or given the ``weight`` mass / MIN_MASS (see answer_weight).
MIN_MASS = 0.05
LOW_MASS = ("weight", "drop")
NO_FLAGS, LOW_MASS_FLAG = frozenset(), frozenset({"low_mass"})

REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry\b|i cannot|i can'?t|i can not|i won'?t|i'?m not able|i am not able|"
    r"i'?m unable|i am unable|as an ai|i don'?t have (personal )?(opinions|beliefs|views|feelings)|"
    r"i do not have (personal )?(opinions|beliefs|views|feelings))",
    re.IGNORECASE)
# A label at the very start of a completion, optionally after "Answer:" and opening markup, read as
# the logprobs estimator reads a token: the capital label only (a lowercase "a" is mostly the
# article), not followed by another letter/digit, nor by a space and a lowercase word (the
# article "A" of "A good question"): "B", " C.", "(C) Not very happy", "**D**", "Answer: E"
# parse; "Because", "a lot", "b." and "A good question" do not.
LEADING_LABEL = re.compile(r"^\s*(?i:answer\s*(?:is)?\s*[:\-]?\s*)?[(\[*\"'`]*([A-Z])(?![A-Za-z0-9])(?![ \t]+[a-z])")


@dataclass(frozen=True, slots=True)  # slots: no per-instance dict for the collector to walk
class Answer:
    """One persona x question answer. ``dist``: length K, catalog option order, sums to 1, or all
    NaN when nothing valid came back. ``covered_mass``: share of the reply that fell on valid labels
    (logprobs: probability mass; sample: share of parseable completions; verbalized: share of the
    stated mass on known labels)."""

    dist: np.ndarray
    covered_mass: float
    n_valid: int
    n_invalid: int
    flags: frozenset = frozenset()

    @property
    def ok(self) -> bool:
        return self.n_valid > 0

    def to_json(self) -> dict:
        return {"dist": [None if x != x else x for x in self.dist.tolist()],  # NaN -> null
                "covered_mass": self.covered_mass, "n_valid": self.n_valid, "n_invalid": self.n_invalid,
                "flags": sorted(self.flags)}


class Estimator(Protocol):
    name: str
    uses_seed: bool

    def make_query(self, prompt: Prompt, **params) -> Query: ...

    def parse(self, reply: Reply, prompt: Prompt) -> Answer: ...


def _invalid(K: int, n_invalid: int, *flags: str) -> Answer:
    return Answer(np.full(K, np.nan), 0.0, 0, n_invalid, frozenset(flags))


@lru_cache(maxsize=4096)
def _inverse(option_index: tuple[int, ...]) -> np.ndarray:
    """Presented position of each catalog option (the inverse permutation)."""
    inverse = np.empty(len(option_index), dtype=np.intp)
    inverse[list(option_index)] = np.arange(len(option_index))
    inverse.flags.writeable = False
    return inverse


@lru_cache(maxsize=4096)
def _positions(labels: tuple[str, ...]) -> dict[str, int]:
    return {label: i for i, label in enumerate(labels)}


def _to_catalog_order(presented: np.ndarray, prompt: Prompt) -> np.ndarray:
    return presented[_inverse(prompt.option_index)]


def _label_of(token: str, labels: tuple[str, ...], *, ignore_case: bool = False) -> str | None:
    """The label a token stands for: the label itself with any surrounding whitespace (" A",
    "A", "A\n"). Case matters unless ``ignore_case`` (JSON keys of the verbalized estimator,
    where "a" cannot be an article)."""
    s = token.strip()
    s = s.upper() if ignore_case else s
    return s if s in labels else None


def answer_weight(answer: Answer, min_mass: float, low_mass: str = "weight") -> float:
    """Weight of one reply in the aggregate: 0 when invalid; 1 at or above ``min_mass``; below it
    0 (``low_mass="drop"``) or ``covered_mass / min_mass`` (``"weight"``: continuous in the
    mass, so a reply just under the threshold counts almost fully and a 1% one hardly at all)."""
    if low_mass not in LOW_MASS:
        raise ValueError(f"unknown LOW_MASS {low_mass!r}; expected one of {', '.join(LOW_MASS)}")
    if not answer.ok:
        return 0.0
    if answer.covered_mass >= min_mass or min_mass <= 0:
        return 1.0
    return 0.0 if low_mass == "drop" else float(answer.covered_mass / min_mass)


def _check_min_mass(min_mass: float) -> float:
    if not 0 <= min_mass <= 1:
        raise ValueError(f"min_mass must be in [0, 1], got {min_mass}")
    return float(min_mass)


class LogprobsEstimator:
    """First-token probabilities over the labels (default estimator)."""

    name = "logprobs"
    uses_seed = False

    def __init__(self, top_logprobs: int = 20, min_mass: float = MIN_MASS, contextual: bool = False):
        if not 1 <= int(top_logprobs) <= 20:
            raise ValueError(f"top_logprobs must be an integer in 1..20 (the OpenAI API limit), got {top_logprobs}")
        if not isinstance(contextual, bool):
            raise ValueError(f"contextual must be true or false, got {contextual!r}")
        self.top_logprobs = int(top_logprobs)
        self.min_mass = _check_min_mass(min_mass)
        self.contextual = contextual

    def make_query(self, prompt: Prompt, **params) -> Query:
        gen = {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": self.top_logprobs}
        gen.update(params)
        return Query.make(list(prompt.messages), **gen)

    def parse(self, reply: Reply, prompt: Prompt, prior: np.ndarray | None = None,
              prior_low_mass: bool = False) -> Answer:
        """``prior``: the label prior in presented order (contextual calibration), or None;
        ``prior_low_mass``: a content-free reply behind it was below ``min_mass`` (flagged)."""
        top = reply.top_logprobs
        if not top:
            return _invalid(prompt.K, 1, "no_logprobs")
        position = _positions(prompt.labels)  # a token counts for the label it is, up to whitespace
        summed = [0.0] * len(prompt.labels)
        for token in sorted(top):  # fixed summation order: same reply -> same bits
            i = position.get(token.strip())
            if i is not None:
                summed[i] += math.exp(top[token])
        presented = np.array(summed)
        mass = float(presented.sum())
        if mass <= 0:
            return _invalid(prompt.K, 1, "unparseable")
        flags = LOW_MASS_FLAG if mass < self.min_mass else NO_FLAGS
        if prior is None:
            dist = presented / mass
        else:
            dist, floored = divide_prior(presented, prior)
            flags = flags | {name for name, on in (("no_prior", np.isnan(prior).any()), ("prior_floored", floored),
                                                   ("prior_low_mass", prior_low_mass)) if on}
        return Answer(_to_catalog_order(dist, prompt), mass, 1, 0, flags)


def parse_leading_label(text: str, labels: tuple[str, ...]) -> str | None:
    """The label a completion starts with, or None (never guessed from later text)."""
    m = LEADING_LABEL.match(text or "")
    if not m:
        return None
    label = m.group(1)
    return label if label in labels else None


class SampleEstimator:
    """Share of ``n`` sampled completions that start with each label."""

    name = "sample"
    uses_seed = True

    def __init__(self, n: int = 20, temperature: float = 1.0, max_tokens: int = 4, min_mass: float = 0.5):
        if int(n) < 1:
            raise ValueError(f"n (completions per prompt) must be >= 1, got {n}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
        self.n, self.temperature, self.max_tokens = int(n), float(temperature), int(max_tokens)
        self.min_mass = _check_min_mass(min_mass)

    def make_query(self, prompt: Prompt, **params) -> Query:
        gen = {"n": self.n, "temperature": self.temperature, "top_p": 1.0, "max_tokens": self.max_tokens, "seed": 0}
        gen.update(params)
        return Query.make(list(prompt.messages), **gen)

    def parse(self, reply: Reply, prompt: Prompt) -> Answer:
        counts = np.zeros(prompt.K)
        n_invalid, refused = 0, False
        for text in reply.texts:
            label = parse_leading_label(text, prompt.labels)
            if label is None:
                n_invalid += 1
                refused |= bool(REFUSAL.match(text or ""))
            else:
                counts[prompt.labels.index(label)] += 1
        n_valid = int(counts.sum())
        refusal = {"refusal"} if refused else set()
        if n_valid == 0:
            return _invalid(prompt.K, n_invalid, "unparseable", *refusal)
        covered = n_valid / (n_valid + n_invalid)
        flags = refusal | ({"low_mass"} if covered < self.min_mass else set())
        return Answer(_to_catalog_order(counts / n_valid, prompt), covered, n_valid, n_invalid, frozenset(flags))


def _first_json_object(text: str):
    """The first JSON object in ``text`` (models often wrap it in prose or code fences), or None."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text or ""):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


class VerbalizedEstimator:
    """Probabilities the model states as a JSON object label -> probability."""

    name = "verbalized"
    uses_seed = False

    def __init__(self, max_tokens: int = 120, temperature: float = 0.0, min_mass: float = 0.5):
        self.max_tokens, self.temperature = int(max_tokens), float(temperature)
        self.min_mass = _check_min_mass(min_mass)

    def make_query(self, prompt: Prompt, **params) -> Query:
        gen = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        gen.update(params)
        return Query.make(list(prompt.messages), **gen)

    def parse(self, reply: Reply, prompt: Prompt) -> Answer:
        text = reply.texts[0] if reply.texts else ""
        refusal = ("refusal",) if REFUSAL.match(text or "") else ()
        obj = _first_json_object(text)
        if obj is None:
            return _invalid(prompt.K, 1, "unparseable", *refusal)
        presented = np.zeros(prompt.K)
        off_label = 0.0
        for key, value in obj.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                return _invalid(prompt.K, 1, "unparseable", *refusal)
            label = _label_of(str(key), prompt.labels, ignore_case=True)
            if label is None:
                off_label += value
            else:
                presented[prompt.labels.index(label)] += value
        on_label = float(presented.sum())
        if on_label <= 0:
            return _invalid(prompt.K, 1, "unparseable", *refusal)
        covered = on_label / (on_label + off_label)
        flags = set(refusal) | ({"low_mass"} if covered < self.min_mass else set())
        return Answer(_to_catalog_order(presented / on_label, prompt), covered, 1, 0, frozenset(flags))


ESTIMATOR_CLASSES = {"logprobs": LogprobsEstimator, "sample": SampleEstimator, "verbalized": VerbalizedEstimator}


def make_estimator(name: str = "logprobs", **params) -> Estimator:
    """The estimator called ``name``, configured with ``params`` (see each class)."""
    try:
        cls = ESTIMATOR_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; expected one of {sorted(ESTIMATOR_CLASSES)}") from None
    try:
        return cls(**params)
    except TypeError as e:
        raise TypeError(f"bad parameters for estimator {name!r}: {e}") from None
