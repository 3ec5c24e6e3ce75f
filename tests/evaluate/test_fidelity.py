"""Individual-level fidelity on the bundled SYNTHETIC sample with answer tables of known quality."""
import warnings

import numpy as np
import pytest

from vpersona import load_catalog
from vpersona.calibrate.mixing import respondent_truth
from vpersona.core.distributions import from_matrix
from vpersona.data.catalog import option_positions
from vpersona.data.wvs import load_bundled_sample
from vpersona.evaluate.fidelity import fidelity_table, persona_fidelity, regression_fidelity
from vpersona.personas.build import build_personas

CATALOG = load_catalog()
COUNTRIES = ["DEU", "NGA", "JPN"]
TARGETS = ["Q6", "Q46", "Q152"]  # Q152 is nominal: scored, but not in the overall mean


@pytest.fixture(scope="module")
def setup():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        survey = load_bundled_sample(COUNTRIES)
    plan = build_personas(survey, COUNTRIES, 12, 3, ["country", "value"], TARGETS)
    return survey, plan, respondent_truth(plan.pairs, plan.personas, plan.leakage, survey)


def oracle(plan, truth, flip=False):
    """Answer table in which each persona puts all its mass on its first respondent's real answer."""
    pos = option_positions(TARGETS, CATALOG)
    t = truth.merge(pos, left_on=["item", "answer"], right_on=["item", "code"])
    first = t.groupby(["persona_id", "country", "kind", "item"], sort=True).first().reset_index()
    K = first["K"].to_numpy()
    p = np.where(flip, K - 1 - first["pos"], first["pos"]).astype(int)
    P = np.zeros((len(first), 10))
    P[np.arange(len(first)), p] = 1.0
    keys = first[["persona_id", "country", "kind", "item"]].assign(multiplicity=1, replicate=0)
    return from_matrix(keys, P, K)


def test_an_oracle_persona_correlates_with_its_respondents_and_a_flipped_one_anticorrelates(setup):
    survey, plan, truth = setup
    good = persona_fidelity(oracle(plan, truth), truth, kinds=["value"]).set_index("item")
    bad = persona_fidelity(oracle(plan, truth, flip=True), truth, kinds=["value"]).set_index("item")
    assert set(good.index) == {*TARGETS, "overall"} and (good["method"] == "value").all()
    assert good.loc["overall", "r"] > 0.9 and good.loc["overall", "r_within"] > 0.9
    assert bad.loc["overall", "r"] < -0.9
    assert good.loc["overall", "r"] == pytest.approx(good.loc[["Q6", "Q46"], "r"].mean())  # ordered items only
    assert good.loc["Q6", "n"] == (truth[(truth["kind"] == "value")]["item"] == "Q6").sum()


def test_a_country_persona_has_no_within_country_signal(setup):
    survey, plan, truth = setup
    table = persona_fidelity(oracle(plan, truth), truth, kinds=["country"]).set_index("item")
    # every country persona of a country is one text: one answer per country, no rank within it
    assert table["r_within"].isna().all() and (table["n_countries"] == 0).all()


def test_regression_reference_predicts_each_respondent_from_other_countries(setup):
    survey, plan, truth = setup
    reg = regression_fidelity(survey, truth, max_train_per_country=200).set_index("item")
    assert (reg["method"] == "regression").all() and set(reg.index) == {*TARGETS, "overall"}
    assert reg.loc["Q6", "r"] > 0.2  # religion importance follows the value profile (Q164 itself is left out)
    both = fidelity_table(oracle(plan, truth), truth, survey, max_train_per_country=200)
    assert set(both["method"]) == {"value", "regression"}


def test_regression_fidelity_never_trains_on_the_respondents_own_country(country_only_link):
    # mutation-proof: Q1 follows Q182 in BRA only (constant elsewhere); trained on BRA's own fold
    # the regression would rank BRA's respondents almost perfectly; trained on the others it cannot
    from scipy.stats import spearmanr

    from vpersona.evaluate.fidelity import regression_expected

    s = country_only_link
    bra = s.responses.index[s.responses["country"] == "BRA"]
    exp = regression_expected(s, ["Q1"], bra, value_items=["Q182", "Q57"], max_train_per_country=None)
    truth = s.responses.loc[exp["respondent"], "Q1"].to_numpy()
    assert len(exp) == len(bra)
    assert abs(spearmanr(exp["expected"], truth).statistic) < 0.3
