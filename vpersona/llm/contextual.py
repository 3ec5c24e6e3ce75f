"""Contextual calibration of the logprobs estimator (Zhao et al. 2021, "Calibrate before use").

A model has a prior over the answer *labels* that has nothing to do with the question (e.g.
SmolLM2 says "A" more than "D" whatever A and D mean). Contextual calibration estimates that
prior from a *content-free* version of the prompt: the same template, the same labels, the
same persona kind, but the question and every option replaced by ``N/A``. The model's label
distribution on it is the prior p_cf; each real answer's label probabilities are divided by
p_cf (per presented position, before mapping back to catalog order) and renormalised.

One content-free prompt per (persona kind, option count K): with every option ``N/A`` the order
of the options does not change the prompt, so one prior per K serves every ordering. A persona
kind with text gets the system message ``N/A``; the ``none`` kind (no system message) gets none.
The content-free prompts are ordinary queries: cached, deduplicated and batched like any answer.
"""
from __future__ import annotations

import numpy as np

from vpersona.llm.prompts import Prompt, Templates, render_options

CONTENT_FREE = "N/A"
# A label the model never puts mass on in the content-free prompt would get an infinite weight;
# the prior is floored here (far below any label SmolLM2 or an API model ranks in its top 20).
PRIOR_FLOOR = 1e-4


def content_free_persona(persona_text: str) -> str:
    """The content-free stand-in of a persona: ``N/A`` for any persona text, nothing for none."""
    return CONTENT_FREE if (persona_text or "").strip() else ""


def content_free_prompt(persona_text: str, K: int, *, estimator: str = "logprobs",
                        templates: Templates | None = None) -> Prompt:
    """The content-free prompt for a persona of this kind and a question with ``K`` options."""
    return render_options(content_free_persona(persona_text), CONTENT_FREE, [CONTENT_FREE] * int(K),
                          item_code=f"content-free-K{int(K)}", estimator=estimator, templates=templates)


def divide_prior(presented: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Label probabilities (presented order, unnormalised) divided by the label prior, renormalised.
    A NaN prior (its content-free reply had no label mass) leaves the answer uncalibrated."""
    presented = np.asarray(presented, dtype=float)
    prior = np.asarray(prior, dtype=float)
    if prior.shape != presented.shape:
        raise ValueError(f"label prior has {prior.shape[0]} labels, the answer {presented.shape[0]}")
    if np.isnan(prior).any():
        out = presented
    else:
        out = presented / np.maximum(prior, PRIOR_FLOOR)
    total = out.sum()
    return out / total if total > 0 else np.full_like(out, np.nan)
