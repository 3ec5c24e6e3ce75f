"""Render the chat prompt that asks one persona one catalog question (docs/method.md, section 2).

System message = persona text (none for an empty persona); user message = the question, its
options each behind a single-token label (A, B, C, ...), and the instruction to answer with the
label only. Templates are data (``vpersona/resources/prompts.yaml``); their hash is ``TEMPLATE_HASH``.

Options can be presented in any permutation (order debiasing: which permutations a run asks is
decided by :mod:`vpersona.llm.orderings`); ``Prompt.option_index`` maps each presented position
back to the catalog option, so estimators always return distributions in catalog order.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import yaml

from vpersona.data.catalog import Item

ESTIMATORS = ("logprobs", "sample", "verbalized")
ORDERS = ("fixed", "reversed", "random")


@dataclass(frozen=True)
class Templates:
    """The parsed prompt template set and its hash."""

    labels: tuple[str, ...]
    system: str
    option_line: str
    scale_point: str
    scale_point_labelled: str
    user: dict
    hash: str


@dataclass(frozen=True, slots=True)  # slots: no per-instance dict for the collector to walk
class Prompt:
    """One rendered prompt.

    ``messages``: chat messages (system only when the persona is non-empty). ``labels``: the
    labels in presented order. ``option_index[j]``: catalog option index (0-based) of the option
    presented at position j. ``template_hash``: hash of the template set; ``rendered_hash``: hash
    of the messages actually sent.
    """

    item: str
    estimator: str
    messages: tuple[dict, ...]
    labels: tuple[str, ...]
    option_index: tuple[int, ...]
    template_hash: str
    rendered_hash: str

    @property
    def K(self) -> int:
        return len(self.labels)

    def catalog_index(self, label: str) -> int:
        """Catalog option index of a presented label (exact label, e.g. ``"B"``)."""
        return self.option_index[self.labels.index(label)]


def _canonical_hash(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@lru_cache(maxsize=None)
def load_templates(path: str | None = None) -> Templates:
    """The bundled template set, or a YAML file of the same layout at ``path``."""
    if path is None:
        text = resources.files("vpersona").joinpath("resources/prompts.yaml").read_text(encoding="utf-8")
        where = "vpersona/resources/prompts.yaml"
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        where = str(path)
    raw = yaml.safe_load(text)
    required = {"labels", "system", "option_line", "scale_point", "scale_point_labelled", "user"}
    missing = required - set(raw or {})
    if missing:
        raise ValueError(f"prompt templates {where} lack keys {sorted(missing)}")
    absent = set(ESTIMATORS) - set(raw["user"])
    if absent:
        raise ValueError(f"prompt templates {where}: user templates missing for estimators {sorted(absent)}")
    labels = tuple(str(x) for x in raw["labels"])
    if len(set(labels)) != len(labels) or any(len(x) != 1 for x in labels):
        raise ValueError(f"prompt templates {where}: labels must be distinct single characters, got {labels}")
    return Templates(labels=labels, system=raw["system"], option_line=raw["option_line"],
                     scale_point=raw["scale_point"], scale_point_labelled=raw["scale_point_labelled"],
                     user=dict(raw["user"]), hash=_canonical_hash(raw))


TEMPLATE_HASH = load_templates().hash


def option_order(K: int, order: str = "fixed", order_seed: int | None = None) -> tuple[int, ...]:
    """Catalog option indices in presented order. ``random`` is a permutation seeded by
    ``order_seed`` (the grid derives it from the run seed and the persona id)."""
    if order == "fixed":
        return tuple(range(K))
    if order == "reversed":
        return tuple(range(K - 1, -1, -1))
    if order == "random":
        if order_seed is None:
            raise ValueError("order='random' needs an integer order_seed")
        return tuple(int(i) for i in np.random.default_rng([int(order_seed), K]).permutation(K))
    raise ValueError(f"unknown option order {order!r}; expected one of {ORDERS}")


def _option_texts(item: Item, t: Templates) -> list[str]:
    numeric = any(label == str(code) for code, label in item.options)
    if not numeric:
        return [label for _, label in item.options]
    return [t.scale_point.format(code=code) if label == str(code)
            else t.scale_point_labelled.format(code=code, text=label) for code, label in item.options]


def render(persona_text: str, item: Item, *, estimator: str = "logprobs", order_seed: int | None = None,
           order: str = "fixed", option_index=None, templates: Templates | None = None) -> Prompt:
    """Render the prompt asking ``item`` to the persona ``persona_text``. ``option_index`` (a
    permutation of the catalog option indices, see :mod:`vpersona.llm.orderings`) overrides
    ``order``/``order_seed``."""
    t = templates or load_templates()
    K = item.n_options
    if K < 2:
        raise ValueError(f"item {item.code} ({item.scale}) has no answer options to ask about")
    idx = option_order(K, order, order_seed) if option_index is None else tuple(int(i) for i in option_index)
    return render_options(persona_text, item.text, _option_texts(item, t), item_code=item.code,
                          estimator=estimator, option_index=idx, templates=t)


def system_message(persona_text: str, templates: Templates | None = None) -> dict | None:
    """The system message that carries ``persona_text``, or None for an empty persona."""
    persona_text = (persona_text or "").strip()
    if not persona_text:
        return None
    return {"role": "system", "content": (templates or load_templates()).system.format(persona=persona_text)}


def render_options(persona_text: str, question: str, option_texts, *, item_code: str, estimator: str = "logprobs",
                   option_index=None, templates: Templates | None = None) -> Prompt:
    """Render a question from its text and option texts (catalog order), options shown in
    ``option_index`` order (default catalog order). :func:`render` and the content-free prompts
    of contextual calibration (:mod:`vpersona.llm.contextual`) both go through here."""
    t = templates or load_templates()
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {ESTIMATORS}")
    texts = list(option_texts)
    K = len(texts)
    if K > len(t.labels):
        raise ValueError(f"item {item_code} has {K} options but the templates define only {len(t.labels)} labels")
    idx = tuple(range(K)) if option_index is None else tuple(int(i) for i in option_index)
    if sorted(idx) != list(range(K)):
        raise ValueError(f"option_index {idx} is not a permutation of 0..{K - 1} (item {item_code})")
    labels = t.labels[:K]
    options = "\n".join(t.option_line.format(label=lab, text=texts[i]) for lab, i in zip(labels, idx))
    example = json.dumps({lab: round(1 / K, 2) for lab in labels})
    user = t.user[estimator].format(question=question, options=options, labels=", ".join(labels), example=example)
    system = system_message(persona_text, t)
    messages = [] if system is None else [system]
    messages.append({"role": "user", "content": user})
    return Prompt(item=item_code, estimator=estimator, messages=tuple(messages), labels=labels, option_index=idx,
                  template_hash=t.hash, rendered_hash=_canonical_hash(messages))
