"""Contextual calibration of the logprobs estimator (Zhao et al. 2021, "Calibrate before use").

A model has a prior over the answer *labels* that has nothing to do with the question (e.g.
SmolLM2 says "A" more than "D" whatever A and D mean). Contextual calibration estimates that
prior from *content-free* versions of the prompt: the same template, the same labels, the same
persona kind, but the question, every option and every persona block replaced by a content-free
input. As Zhao et al. do, several inputs are used (:data:`CONTENT_FREE_INPUTS`: ``N/A``, the empty
string, ``[MASK]``) and their label distributions averaged (:func:`combine_priors`). Each real
answer's label probabilities are divided by that prior p_cf (per presented position, before
mapping back to catalog order) and renormalised (:func:`divide_prior`).

One prior per (persona kind, option count K): with every option content-free the order of the
options does not change the prompt, so one prior per K serves every ordering. A kind's
content-free persona is its layout of ``vpersona/resources/persona_templates.yaml`` with the
preamble kept and every other block (country, demographic, values) replaced by the input
(:func:`content_free_persona`); kind ``none`` has no system message. Kinds whose content-free
prompts are identical (``country`` and ``value`` are both "preamble + one block") share the
queries. The content-free prompts are ordinary queries: cached, deduplicated and batched.

A label the model puts no mass on in a content-free reply (outside its top-k) has no prior
estimate; it is floored at the smallest prior the replies do list (:func:`divide_prior`), so
dividing cannot promote a label the model hardly gives to the top; the answer is then flagged
``prior_floored``. A content-free reply whose label mass is below the estimator's ``min_mass``
is reported: the answers it calibrates carry ``prior_low_mass``.
"""
from __future__ import annotations

import numpy as np

from vpersona.llm.prompts import Prompt, Templates, render_options
from vpersona.personas.templates import load_persona_templates

CONTENT_FREE = "N/A"
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")  # Zhao et al. 2021, section 5


def content_free_persona(kind: str, persona_text: str = "x", content: str = CONTENT_FREE) -> str:
    """The content-free stand-in of a persona of ``kind``: its template layout with the preamble
    and every block replaced by ``content``; nothing for kind ``none`` (or an empty text). A kind
    the bundled templates do not know (personas built from another templates file) gets ``content``."""
    if not (persona_text or "").strip():
        return ""
    templates = load_persona_templates()
    if kind not in templates.kinds:
        return content
    layout = templates.layout(kind)
    if not layout.strip():
        return ""
    return layout.format(preamble=templates.preamble, country=content, demographic=content, values=content).strip()


def content_free_prompt(kind: str, K: int, content: str = CONTENT_FREE, *, persona_text: str = "x",
                        estimator: str = "logprobs", templates: Templates | None = None) -> Prompt:
    """The content-free prompt for a persona of ``kind`` and a question with ``K`` options."""
    return render_options(content_free_persona(kind, persona_text, content), content, [content] * int(K),
                          item_code=f"content-free-K{int(K)}", estimator=estimator, templates=templates)


def combine_priors(dists) -> np.ndarray:
    """Mean of the content-free label distributions that have label mass (NaN ones left out); all
    NaN when none has any (the answers then stay uncalibrated, flagged ``no_prior``)."""
    rows = [np.asarray(d, dtype=float) for d in dists]
    ok = [d for d in rows if not np.isnan(d).any()]
    if not ok:
        return np.full(rows[0].shape, np.nan)
    return np.mean(ok, axis=0)


def prior_floor(prior: np.ndarray) -> float:
    """The floor of a prior: the smallest probability it lists (> 0)."""
    listed = prior[prior > 0]
    return float(listed.min()) if len(listed) else np.nan


def divide_prior(presented: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, bool]:
    """Label probabilities (presented order, unnormalised) divided by the label prior, renormalised,
    and whether a label's prior was floored (0 in the prior: floored at :func:`prior_floor`).
    A NaN prior (no content-free reply had label mass) leaves the answer uncalibrated."""
    presented = np.asarray(presented, dtype=float)
    prior = np.asarray(prior, dtype=float)
    if prior.shape != presented.shape:
        raise ValueError(f"label prior has {prior.shape[0]} labels, the answer {presented.shape[0]}")
    floored = False
    if np.isnan(prior).any():
        out = presented
    else:
        floor = prior_floor(prior)
        floored = bool((prior < floor).any())
        out = presented / np.maximum(prior, floor)
    total = out.sum()
    return (out / total if total > 0 else np.full_like(out, np.nan)), floored
