"""Order debiasing and contextual calibration against a fake model whose biases are known exactly.

The fake model reads the option lines of the prompt ("A. Very happy", ...) and answers with
top_logprobs built from two known parts: a *persona effect* on the options (catalog order) and
a bias that depends only on the presented position (additive, `PositionBiasModel`) or on the
label (multiplicative prior, `LabelPriorModel`). What each ORDER / CONTEXTUAL setting should
recover is then known in closed form.
"""
import math
import re

import numpy as np
import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.calibrate.aggregate import aggregate
from vpersona.core.distributions import prob_columns
from vpersona.llm.backends.base import Reply
from vpersona.llm.contextual import combine_priors, content_free_prompt, divide_prior
from vpersona.llm.grid import plan_requests, run_grid
from vpersona.llm.orderings import ORDERS, orderings
from vpersona.llm.prompts import _option_texts, load_templates

CATALOG = load_catalog()
ITEMS = ["Q46", "Q33"]  # K = 4 and K = 5
TEXTS = {code: _option_texts(CATALOG[code], load_templates()) for code in ITEMS}
OPTION_LINE = re.compile(r"^([A-Z])\. (.*)$", re.M)


def effect(K: int, persona: str) -> np.ndarray:
    """The persona effect (catalog order): the favoured option three times as likely as the others."""
    w = np.ones(K)
    w[0 if "very" in persona else K - 1] = 3.0
    return w / w.sum()


def linear(K):
    return -0.03 * (np.arange(K) - (K - 1) / 2)


def quadratic(K):
    x2 = (np.arange(K) - (K - 1) / 2) ** 2
    return 0.01 * (x2 - x2.mean())


class FakeModel:
    kind = "fake"

    def __init__(self):
        self.calls = 0
        self.prompts = []

    def identity(self):
        return {"kind": self.kind, "model": type(self).__name__}

    def read(self, query):
        """(labels in presented order, catalog index per position or None for N/A, persona text)."""
        msgs = query.message_dicts
        user, persona = msgs[-1]["content"], msgs[0]["content"] if len(msgs) > 1 else ""
        lines = OPTION_LINE.findall(user)
        item = next((c for c in ITEMS if CATALOG[c].text in user), None)
        index = [None if item is None else TEXTS[item].index(text) for _, text in lines]  # None: content-free
        return [label for label, _ in lines], index, persona

    async def acomplete(self, query):
        self.calls += 1
        self.prompts.append(query.message_dicts[-1]["content"])
        labels, index, persona = self.read(query)
        p = self.probs(len(labels), index, persona)
        return Reply(texts=[labels[int(np.argmax(p))]], top_logprobs={" " + lab: math.log(x) for lab, x in zip(labels, p)})


class PositionBiasModel(FakeModel):
    """p(position j) = effect[option shown at j] + bias[j]; bias sums to 0 (pure position bias)."""

    def __init__(self, bias):
        super().__init__()
        self.bias = bias

    def probs(self, K, index, persona):
        return effect(K, persona)[index] + self.bias(K)


class LabelPriorModel(FakeModel):
    """p(label j) proportional to prior[j] * effect[option shown at j]; N/A options carry no effect."""

    PRIOR = np.array([0.5, 0.2, 0.12, 0.1, 0.08])

    def probs(self, K, index, persona):
        e = np.ones(K) if index[0] is None else effect(K, persona)[index]
        p = self.PRIOR[:K] * e
        return p / p.sum()


def plan(countries=("NGA", "SWE")):
    texts = ["You are very happy.", "You are not happy at all.", ""]
    personas = pd.DataFrame([{"persona_id": i, "country": c, "kind": "none" if not t else "value", "text": t,
                              "multiplicity": 1} for c in countries for i, t in enumerate(texts)])
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": ITEMS}), how="cross")
    return pairs.assign(multiplicity=1), personas


def expected(table, extra=None):
    """The persona effect of each row (plus ``extra(K)`` per catalog option, when given)."""
    rows = []
    for persona_id, K in zip(table["persona_id"], table["K"]):
        text = ["You are very happy.", "You are not happy at all.", ""][persona_id]
        e = effect(K, text) + (extra(K) if extra else 0)
        rows.append(np.pad(e, (0, 10 - K)))
    return np.array(rows)


def run(model, **kw):
    pairs, personas = plan()
    return run_grid(pairs, personas, catalog=CATALOG, backend=model, cache=None, progress=False, **kw)


def test_cyclic_recovers_the_persona_effect_exactly():
    model = PositionBiasModel(lambda K: linear(K) + quadratic(K))
    table = run(model, order="cyclic")
    np.testing.assert_allclose(table[prob_columns()].to_numpy(), expected(table), atol=1e-12)
    assert table.attrs["run_stats"]["prompts_per_row"] == pytest.approx((4 + 5) / 2)


def test_pair_removes_the_linear_part_of_the_position_bias():
    table = run(PositionBiasModel(linear), order="pair")
    np.testing.assert_allclose(table[prob_columns()].to_numpy(), expected(table), atol=1e-12)
    # a symmetric (quadratic) bias is left as it is: option i sits at i and K-1-i, both with bias q_i
    table = run(PositionBiasModel(lambda K: linear(K) + quadratic(K)), order="pair")
    np.testing.assert_allclose(table[prob_columns()].to_numpy(), expected(table, quadratic), atol=1e-12)


def test_fixed_order_removes_neither():
    table = run(PositionBiasModel(linear), order="fixed")
    np.testing.assert_allclose(table[prob_columns()].to_numpy(), expected(table, linear), atol=1e-12)
    assert np.abs(table[prob_columns()].to_numpy() - expected(table)).max() > 0.04
    rev = run(PositionBiasModel(linear), order="reversed")  # the bias flips sign, it does not vanish
    np.testing.assert_allclose(rev[prob_columns()].to_numpy(), expected(rev, lambda K: -linear(K)), atol=1e-12)


def test_random_order_differs_by_replicate_country_and_persona():
    pairs, personas = plan()
    p = plan_requests(pairs, personas, catalog=CATALOG, backend_identity={"kind": "x"}, order="random",
                      replicates=3, seed=7)
    perms = {(r["persona_id"], r["country"], r["item"], r["replicate"]): p.requests[ids[0]].prompt.option_index
             for r, ids in zip(p.rows.to_dict("records"), p.row_requests)}
    q33 = {k: v for k, v in perms.items() if k[2] == "Q33"}
    assert len({v for k, v in q33.items() if k[:2] == (2, "NGA")}) > 1  # replicates differ
    assert any(q33[(2, "NGA", "Q33", r)] != q33[(2, "SWE", "Q33", r)] for r in range(3))  # `none` differs by country
    # mutation-proof: the two value personas of a country (same item, same replicate) get their own orders
    assert all(q33[(0, c, "Q33", r)] != q33[(1, c, "Q33", r)] for c in ("NGA", "SWE") for r in range(3))
    assert orderings(5, "random", seed=7, country="NGA", persona=0, item="Q33") != \
        orderings(5, "random", seed=7, country="NGA", persona=1, item="Q33")
    assert len(p.requests) > len({(k[0], k[2], k[3]) for k in perms})  # so the none persona is not deduplicated away
    again = plan_requests(pairs, personas, catalog=CATALOG, backend_identity={"kind": "x"}, order="random",
                          replicates=3, seed=7)
    assert [r.key for r in again.requests] == [r.key for r in p.requests]


def test_orderings_balance_positions():
    for K in (2, 4, 5, 10):
        cyc = np.array(orderings(K, "cyclic"))
        assert all(sorted(col) == list(range(K)) for col in cyc.T)  # each option at each position once
        assert all(sorted(row) == list(range(K)) for row in cyc)
        assert orderings(K, "pair") == (tuple(range(K)), tuple(range(K))[::-1])
    with pytest.raises(ValueError, match="unknown ORDER 'shuffle'"):
        orderings(4, "shuffle")
    assert set(ORDERS) == {"fixed", "reversed", "pair", "cyclic", "random"}


def test_contextual_calibration_removes_a_pure_label_prior_exactly():
    plain = run(LabelPriorModel(), order="fixed")
    assert np.abs(plain[prob_columns()].to_numpy() - expected(plain)).max() > 0.1
    model = LabelPriorModel()
    table = run(model, order="fixed", contextual=True)
    np.testing.assert_allclose(table[prob_columns()].to_numpy(), expected(table), atol=1e-12)
    # per (persona kind: none / value) x K (2 here) one content-free prompt per input (N/A, "", [MASK]),
    # shared by every country and persona
    assert table.attrs["run_stats"]["calibration_queries"] == 12
    assert sum("A. N/A" in p for p in model.prompts) == 4 and sum("A. [MASK]" in p for p in model.prompts) == 4
    cyc = run(LabelPriorModel(), order="cyclic", contextual=True)  # the prior is per label, so any order works
    np.testing.assert_allclose(cyc[prob_columns()].to_numpy(), expected(cyc), atol=1e-12)


def test_a_label_missing_from_the_prior_is_floored_at_the_smallest_listed_prior_and_flagged():
    # the case: with a 1e-4 floor the 0.1% label became 68% of the answer
    dist, floored = divide_prior(np.array([.3, .3, .2, .199, .001]), np.array([.4, .3, .2, .1, 0]))
    assert floored and dist[4] < 0.01 and dist.argmax() == 3
    np.testing.assert_allclose(dist, np.array([.75, 1, 1, 1.99, .01]) / 4.75)
    same, floored = divide_prior(np.array([.5, .5]), np.array([.5, .5]))
    assert not floored and same.tolist() == [.5, .5]
    assert combine_priors([np.array([.6, .4]), np.full(2, np.nan), np.array([.4, .6])]).tolist() == [.5, .5]


class ContentFreeReplyModel(LabelPriorModel):
    """LabelPriorModel with its own top_logprobs for the content-free prompts (``content_free``)."""

    async def acomplete(self, query):
        labels, index, persona = self.read(query)
        if index[0] is not None:
            return await super().acomplete(query)
        self.calls += 1
        return Reply(texts=["A"], top_logprobs={k: math.log(v) for k, v in self.content_free(labels).items()})


class MissingLabelPriorModel(ContentFreeReplyModel):
    """Content-free replies list A, B, C but no later label (outside the top-k)."""

    def content_free(self, labels):
        return {" A": 0.5, " B": 0.3, " C": 0.15, "The": 0.05}


def test_contextual_floors_an_unlisted_label_so_it_cannot_take_over():
    table = run(MissingLabelPriorModel(), order="fixed", contextual=True)
    k4 = table[table["K"] == 4]
    assert k4["flags"].str.contains("prior_floored").all()
    # D's prior is floored at C's 0.15, not 1e-4: D (true share <= 0.1 * 3/6 of the label prior) stays small
    assert (k4["p4"] < 0.5).all(), k4[["p1", "p2", "p3", "p4"]]


class LowMassPriorModel(ContentFreeReplyModel):
    """Content-free replies put only 2% of their mass on the labels."""

    def content_free(self, labels):
        prior = self.PRIOR[:len(labels)] / self.PRIOR[:len(labels)].sum()
        return {**{" " + lab: 0.02 * x for lab, x in zip(labels, prior)}, "The": 0.98}


def test_contextual_reports_a_low_mass_content_free_reply_on_the_answers_it_calibrates():
    table = run(LowMassPriorModel(), order="fixed", contextual=True)
    assert table["flags"].str.contains("prior_low_mass").all()
    assert not run(LabelPriorModel(), order="fixed", contextual=True)["flags"].str.contains("prior_low_mass").any()


def test_each_persona_kind_gets_its_own_content_free_prompts():
    one, two = content_free_prompt("value", 4), content_free_prompt("value+demographic", 4)
    assert one.messages[0]["content"].endswith("\n\nN/A") and two.messages[0]["content"].endswith("\n\nN/A\nN/A")
    assert len(content_free_prompt("none", 4).messages) == 1  # no system message
    pairs, personas = plan(countries=("NGA",))
    extra = personas[personas["kind"] == "value"].assign(kind="value+demographic",
                                                         persona_id=lambda d: d["persona_id"] + 10)
    personas = pd.concat([personas, extra], ignore_index=True)
    pairs = pd.concat([pairs, pairs[pairs["kind"] == "value"].assign(kind="value+demographic",
                                                                   persona_id=lambda d: d["persona_id"] + 10)])
    p = plan_requests(pairs, personas, catalog=CATALOG, backend_identity={"kind": "x"}, order="fixed", contextual=True)
    content_free = {j for g in p.priors for j in g}
    # per K: none 3, value 3, value+demographic 2 more (its empty-input prompt is value's: no block left)
    assert len(content_free) == 8 * 2 and len(p.priors) == 3 * 2
    rows = p.rows.assign(prior=p.row_prior)
    assert rows.groupby("kind")["prior"].nunique().to_dict() == {"none": 2, "value": 2, "value+demographic": 2}
    assert len(set(rows["prior"])) == 6


def test_contextual_is_a_logprobs_option_only():
    with pytest.raises(TypeError, match="contextual"):
        run(LabelPriorModel(), estimator="sample", contextual=True)


# Replies with little mass on the labels: weighted by their mass or dropped, and counted.

class LowMassModel(FakeModel):
    """The persona effect, but the "not happy" persona puts only 1% of its mass on the labels."""

    async def acomplete(self, query):
        labels, index, persona = self.read(query)
        p = effect(len(labels), persona)[index]
        scale = 0.01 if "not happy" in persona else 1.0
        top = {lab: math.log(scale * x) for lab, x in zip(labels, p)}
        if scale < 1:
            top["I"] = math.log(0.99)
        return Reply(texts=["I"], top_logprobs=top)


def cells(low_mass):
    pairs, personas = plan(countries=("NGA",))
    table = run_grid(pairs, personas, catalog=CATALOG, backend=LowMassModel(), cache=None, progress=False,
                     low_mass=low_mass, min_mass=0.05)
    return table, aggregate(table).set_index(["item", "kind"])


@pytest.mark.parametrize("low_mass,weight", [("weight", 0.2), ("drop", 0.0)])
def test_low_mass_rows_are_weighted_or_dropped_and_reported(low_mass, weight):
    table, agg = cells(low_mass)
    stats = table.attrs["run_stats"]
    assert stats["low_mass_replies"] == stats["low_mass_rows"] == 2 and stats["low_mass_policy"] == low_mass
    low = table[table["persona_id"] == 1]
    assert low["flags"].str.contains("low_mass").all()
    np.testing.assert_allclose(low["answer_weight"], weight)
    assert stats["low_mass_dropped_rows"] == (2 if low_mass == "drop" else 0)
    assert low["p1"].isna().all() == (low_mass == "drop")
    for item in ("Q46", "Q33"):
        K = CATALOG[item].n_options
        mix = (effect(K, "very") + weight * effect(K, "not happy")) / (1 + weight)
        np.testing.assert_allclose(agg.loc[(item, "value"), prob_columns()[:K]].to_numpy(float), mix, atol=1e-12)
        assert agg.loc[(item, "value"), "n_valid_personas"] == (2 if low_mass == "weight" else 1)


class OneLowMassOrderingModel(PositionBiasModel):
    """Position bias, and the reversed ordering of each question gets only 2% of its mass on labels."""

    async def acomplete(self, query):
        labels, index, persona = self.read(query)
        reply = await super().acomplete(query)
        if index[0] == len(labels) - 1:  # the reversed ordering shows the last option first
            reply = Reply(texts=["I"], top_logprobs={**{k: v + math.log(0.02) for k, v in reply.top_logprobs.items()},
                                                     "I": math.log(0.98)})
        return reply


def test_a_low_mass_ordering_keeps_its_share_of_the_row_so_pair_stays_balanced():
    # pair = fixed + reversed: the linear position bias cancels only if both orderings count equally
    table = run(OneLowMassOrderingModel(linear), order="pair", min_mass=0.05)
    np.testing.assert_allclose(table[prob_columns()].to_numpy(), expected(table), atol=1e-12)
    assert table["flags"].str.contains("low_mass").all()
    np.testing.assert_allclose(table["answer_weight"], (1 + 0.02 / 0.05) / 2)


def test_unknown_low_mass_policy_is_named():
    with pytest.raises(ValueError, match="unknown LOW_MASS 'keep'"):
        cells("keep")
