"""The SIMULATED backend: it reads the prompt (question, options in any order, persona sentences),
answers in the shape of a real backend, and leakage control is real (a removed sentence cannot
inform the answer)."""
import dataclasses
import json
import warnings

import numpy as np
import pytest

from vpersona import build_personas, load_catalog, make_backend, run_grid
from vpersona.core.distributions import prob_columns
from vpersona.llm.backends.base import BackendError, Query, cache_key
from vpersona.llm.backends.simulated import SimulatedBackend, check_knobs
from vpersona.llm.contextual import content_free_prompt
from vpersona.llm.estimators import make_estimator
from vpersona.llm.prompts import render
from vpersona.personas.descriptors import load_descriptors

CATALOG = load_catalog()
GOD = {code: load_descriptors().sentence("Q164", code) for code in (1, 10)}
PREAMBLE = "You are a survey respondent."


def answer(backend, persona, item, *, estimator="logprobs", order="fixed", **params):
    prompt = render(persona, CATALOG[item], estimator=estimator, order=order, order_seed=3)
    est = make_estimator(estimator, **params)
    reply = backend.complete(est.make_query(prompt))
    return est.parse(reply, prompt), reply


def test_make_backend_builds_it_only_by_name_and_labels_it_simulated():
    b = make_backend("simulated", options={"fidelity": 0.5}, seed=3)
    assert isinstance(b, SimulatedBackend) and b.simulated
    ident = b.identity()
    assert ident["kind"] == "simulated" and ident["simulated"] is True and ident["knobs"]["fidelity"] == 0.5
    q = Query.make([{"role": "user", "content": "x"}])
    assert cache_key(ident, q, "logprobs") != cache_key(make_backend("simulated", seed=3).identity(), q, "logprobs")


@pytest.mark.parametrize("knobs, word", [({"fidelty": 1}, "unknown"), ({"fidelity": 1.5}, "fidelity"),
                                         ({"compression": 1.0}, "compression"), ({"noise": -1}, "noise")])
def test_bad_knobs_are_one_line_errors(knobs, word):
    with pytest.raises(ValueError, match=word) as err:
        check_knobs(knobs)
    assert "\n" not in str(err.value)


def test_logprobs_reply_is_the_model_distribution_in_catalog_order_whatever_the_order():
    b = SimulatedBackend({"fidelity": 1.0, "country": 0.5}, seed=1)
    persona = f"{PREAMBLE}\n\nYou live in Japan. {GOD[10]}"
    expected = b.distribution(persona, "Q6")
    for order in ("fixed", "reversed", "random"):
        a, reply = answer(b, persona, "Q6", order=order)
        assert set(reply.top_logprobs) == {"A", "B", "C", "D"}
        assert a.covered_mass == pytest.approx(1.0) and not a.flags
        np.testing.assert_allclose(a.dist, expected, atol=1e-12)


def test_persona_sentences_are_read_value_and_country():
    b = SimulatedBackend({"fidelity": 1.0, "country": 1.0}, seed=1)
    religious, secular = (answer(b, f"{PREAMBLE}\n\n{GOD[c]}", "Q6")[0].dist for c in (10, 1))
    assert religious[0] > secular[0] + 0.3  # Q6 option 1 = religion "Very important"
    world = b.world.priors("Q6")[2]
    np.testing.assert_allclose(answer(b, f"{PREAMBLE}\n\nYou live in Nigeria.", "Q6")[0].dist, world["NGA"], atol=1e-9)
    np.testing.assert_allclose(answer(b, "", "Q6")[0].dist, b.world.priors("Q6")[0], atol=1e-9)


def test_fidelity_zero_ignores_values_and_compression_sharpens():
    flat = SimulatedBackend({"fidelity": 0.0, "country": 0.0}, seed=1)
    assert np.allclose(answer(flat, f"{PREAMBLE}\n\n{GOD[10]}", "Q6")[0].dist, answer(flat, "", "Q6")[0].dist)
    sharp = SimulatedBackend({"fidelity": 0.0, "country": 0.0, "compression": 0.5}, seed=1)
    p, q = answer(flat, "", "Q6")[0].dist, answer(sharp, "", "Q6")[0].dist
    assert (q ** 2).sum() > (p ** 2).sum() + 0.05
    np.testing.assert_allclose(q, p ** 2 / (p ** 2).sum())


def test_sample_and_verbalized_replies_parse_like_a_real_model():
    b = SimulatedBackend({"fidelity": 1.0}, seed=1)
    persona = f"{PREAMBLE}\n\n{GOD[10]}"
    exact = b.distribution(persona, "Q6")
    a, reply = answer(b, persona, "Q6", estimator="sample", n=400)
    assert len(reply.texts) == 400 and a.n_valid == 400 and a.n_invalid == 0
    assert np.abs(a.dist - exact).max() < 0.08
    again, _ = answer(b, persona, "Q6", estimator="sample", n=400)
    np.testing.assert_array_equal(a.dist, again.dist)  # seeded by the query
    v, reply = answer(b, persona, "Q6", estimator="verbalized")
    assert json.loads(reply.texts[0]) and np.abs(v.dist - exact).max() < 1e-3


def test_position_bias_favours_the_first_label_and_content_free_prompts_measure_it():
    b = SimulatedBackend({"fidelity": 0.0, "country": 0.0, "position_bias": 1.0}, seed=1)
    fixed, rev = answer(b, "", "Q6")[0].dist, answer(b, "", "Q6", order="reversed")[0].dist
    assert fixed[0] > rev[0] and rev[3] > fixed[3]
    prompt = content_free_prompt("value", 4)
    reply = b.complete(make_estimator("logprobs").make_query(prompt))
    lp = np.array([reply.top_logprobs[x] for x in "ABCD"])
    np.testing.assert_allclose(np.diff(lp), -2 / 3)  # b * (1 - 2j/(K-1)): steps of 2b/(K-1)


def test_unknown_questions_are_a_backend_error():
    b = SimulatedBackend(seed=1)
    q = Query.make([{"role": "user", "content": "What is your favourite colour?\n\nA. Red\nB. Blue"}])
    with pytest.raises(BackendError, match="catalog questions"):
        b.complete(q)


def test_leakage_control_is_real_a_removed_proxy_sentence_cannot_inform_the_answer():
    """Q6 (religion important) has proxy Q164 (God important). Two surveys differ only in every
    respondent's Q164 answer; with leakage control the Q6 answers are identical, while a target
    without that proxy (Q185) still hears the Q164 sentence and changes."""
    from vpersona import load_bundled_sample
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = load_bundled_sample(["DEU", "NGA"])
    backend = SimulatedBackend({"fidelity": 1.0, "country": 0.0}, seed=1)
    tables = []
    for code in (1, 10):
        survey = dataclasses.replace(base, responses=base.responses.assign(Q164=float(code)),
                                     missing=base.missing.assign(Q164=0))
        plan = build_personas(survey, ["DEU", "NGA"], 12, 5, ["value"], ["Q6", "Q185"], catalog=CATALOG)
        assert set(plan.leakage["item"]) == {"Q6"}
        t = run_grid(plan.pairs, plan.personas, catalog=CATALOG, backend=backend, cache=None, progress=False)
        tables.append(t.groupby("item")[prob_columns()].mean())
    low, high = tables
    np.testing.assert_allclose(low.loc["Q6"], high.loc["Q6"], atol=1e-12)
    assert np.abs(low.loc["Q185"] - high.loc["Q185"]).max() > 0.02
