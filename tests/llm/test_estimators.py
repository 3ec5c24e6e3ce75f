"""Estimators on hand-made replies: variants summed, mass covered, garbage counted, never a crash."""
import math

import numpy as np
import pytest

from vpersona import load_catalog
from vpersona.llm.backends.base import Reply
from vpersona.llm.estimators import MIN_MASS, answer_weight, make_estimator, parse_leading_label
from vpersona.llm.prompts import render

CATALOG = load_catalog()
Q46 = CATALOG["Q46"]  # 4 options: Very happy .. Not at all happy
P = render("You are very happy.", Q46)
P_REV = render("You are very happy.", Q46, order="reversed")


def lp(**probs):
    return {k.replace("_", " "): math.log(v) for k, v in probs.items()}


def reply_lp(top):
    return Reply(texts=[max(top, key=top.get)], top_logprobs=top)


def test_logprobs_query_parameters():
    q = make_estimator("logprobs", top_logprobs=5).make_query(P)
    assert q.param_dict == {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 5}
    assert q.message_dicts == list(P.messages)
    with pytest.raises(ValueError, match="top_logprobs"):
        make_estimator("logprobs", top_logprobs=21)
    with pytest.raises(ValueError, match="unknown estimator"):
        make_estimator("telepathy")


def test_logprobs_sums_whitespace_variants_but_not_the_article_a():
    # "a" / " a" are mostly the English article: counting them for label A is a first-option bias
    top = {"A": math.log(0.3), " A": math.log(0.1), "A\n": math.log(0.05), "a": math.log(0.05), " a": math.log(0.05),
           "B": math.log(0.2), " b": math.log(0.02), "The": math.log(0.2), "C": math.log(0.1)}
    a = make_estimator("logprobs").parse(reply_lp(top), P)
    assert a.covered_mass == pytest.approx(0.75)
    np.testing.assert_allclose(a.dist, [0.45 / 0.75, 0.2 / 0.75, 0.1 / 0.75, 0.0])
    assert a.n_valid == 1 and a.n_invalid == 0 and a.flags == frozenset()


def test_low_mass_replies_are_weighted_by_mass_or_dropped():
    est = make_estimator("logprobs")  # min_mass default 0.05
    assert est.min_mass == MIN_MASS == 0.05
    low = est.parse(reply_lp({"B": math.log(0.01), "I": math.log(0.9)}), P)
    ok = est.parse(reply_lp({"B": math.log(0.06), "I": math.log(0.9)}), P)
    assert low.flags == {"low_mass"} and ok.flags == frozenset()
    assert answer_weight(low, 0.05, "weight") == pytest.approx(0.2)
    assert answer_weight(low, 0.05, "drop") == 0.0
    assert answer_weight(ok, 0.05, "weight") == answer_weight(ok, 0.05, "drop") == 1.0
    with pytest.raises(ValueError, match="LOW_MASS"):
        answer_weight(ok, 0.05, "ignore")


def test_logprobs_maps_presented_order_back_to_catalog():
    top = {"A": math.log(0.7), "D": math.log(0.3)}
    a = make_estimator("logprobs").parse(reply_lp(top), P_REV)  # A = Not at all happy, D = Very happy
    np.testing.assert_allclose(a.dist, [0.3, 0.0, 0.0, 0.7])


def test_logprobs_low_mass_no_mass_and_no_logprobs():
    est = make_estimator("logprobs", min_mass=0.5)
    low = est.parse(reply_lp({"B": math.log(0.2), "I": math.log(0.7)}), P)
    assert low.flags == {"low_mass"} and low.covered_mass == pytest.approx(0.2)
    np.testing.assert_allclose(low.dist, [0, 1, 0, 0])
    none = est.parse(reply_lp({"Sorry": math.log(0.9), "E": math.log(0.1)}), P)  # E is not a label of Q46
    assert none.flags == {"unparseable"} and np.isnan(none.dist).all() and none.n_invalid == 1
    missing = est.parse(Reply(texts=["A"], top_logprobs=None), P)
    assert missing.flags == {"no_logprobs"} and np.isnan(missing.dist).all()


def test_logprobs_parse_is_order_independent_bit_for_bit():
    top = {"A": -0.31, " a": -2.7, "B": -1.9, " B": -3.3, "C": -4.1, "x": -0.9}
    shuffled = dict(reversed(list(top.items())))
    est = make_estimator("logprobs")
    assert est.parse(reply_lp(top), P).dist.tobytes() == est.parse(reply_lp(shuffled), P).dist.tobytes()


@pytest.mark.parametrize("text,label", [("A", "A"), (" C.", "C"), ("(C) Not very happy", "C"), ("**D**", "D"),
                                        ("Answer: B", "B"), ("answer is C", "C"), ("A\n", "A"), ("B. Agree", "B"),
                                        ("Because", None), ("I think A", None), ("E", None), ("", None),
                                        ("10", None), ("a lot", None), ("A good question", None), (" b.", None),
                                        ("answer is c", None)])
def test_leading_label(text, label):
    assert parse_leading_label(text, P.labels) == label


def test_sample_counts_and_unparseable():
    est = make_estimator("sample", n=6, temperature=0.7)
    q = est.make_query(P, seed=42)
    assert q.param_dict == {"n": 6, "temperature": 0.7, "top_p": 1.0, "max_tokens": 4, "seed": 42}
    a = est.parse(Reply(texts=["A", "A.", "B", "I'm sorry, I cannot answer", "a lot", "A", "A good question", "b"]), P)
    np.testing.assert_allclose(a.dist, [0.75, 0.25, 0, 0])
    assert (a.n_valid, a.n_invalid) == (4, 4) and a.covered_mass == pytest.approx(4 / 8)
    assert a.flags == {"refusal"}
    rev = est.parse(Reply(texts=["A", "A", "D"]), P_REV)
    np.testing.assert_allclose(rev.dist, [1 / 3, 0, 0, 2 / 3])


def test_sample_nothing_valid_is_nan_and_flagged():
    a = make_estimator("sample", n=3).parse(Reply(texts=["As an AI, I have no opinion.", "?", "xyz"]), P)
    assert np.isnan(a.dist).all() and a.flags == {"unparseable", "refusal"} and (a.n_valid, a.n_invalid) == (0, 3)
    low = make_estimator("sample", n=4, min_mass=0.5).parse(Reply(texts=["A", "?", "?", "?"]), P)
    assert low.flags == {"low_mass"}
    with pytest.raises(ValueError, match="temperature"):
        make_estimator("sample", temperature=0)


def test_verbalized_valid_json_in_prose():
    est = make_estimator("verbalized")
    text = 'Sure! ```json\n{"A": 0.5, "b": 0.25, "C": 0.25}\n``` That is my answer.'
    a = est.parse(Reply(texts=[text]), P)
    np.testing.assert_allclose(a.dist, [0.5, 0.25, 0.25, 0.0])  # missing D -> 0
    assert a.covered_mass == 1.0 and a.n_valid == 1 and a.flags == frozenset()
    pct = est.parse(Reply(texts=['{"A": 60, "B": 20, "C": 10, "D": 10}']), P_REV)
    np.testing.assert_allclose(pct.dist, [0.1, 0.1, 0.2, 0.6])


def test_verbalized_off_label_mass_and_invalid_objects():
    est = make_estimator("verbalized", min_mass=0.5)
    off = est.parse(Reply(texts=['{"A": 0.2, "Z": 0.8}']), P)
    assert off.covered_mass == pytest.approx(0.2) and off.flags == {"low_mass"}
    for bad in ['{"A": -0.1, "B": 1.1}', '{"A": "0.5", "B": 0.5}', '{"A": 0, "B": 0}', "A. Very happy",
                '{"A": 0.5, "B": ', '[0.5, 0.5]', '{"A": true}', '{"A": NaN, "B": 1}']:
        a = est.parse(Reply(texts=[bad]), P)
        assert np.isnan(a.dist).all() and a.n_invalid == 1 and "unparseable" in a.flags, bad
    refusal = est.parse(Reply(texts=["I'm sorry, I can't give probabilities."]), P)
    assert refusal.flags == {"unparseable", "refusal"}
    assert est.parse(Reply(texts=[]), P).flags == {"unparseable"}


def test_answer_to_json_roundtrip_keeps_nan_as_null():
    a = make_estimator("sample", n=1).parse(Reply(texts=["?"]), P)
    assert a.to_json()["dist"] == [None] * 4
