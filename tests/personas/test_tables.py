"""`-p N_PERSONAS 1`: a persona of one respondent reads back from personas.csv with text ids."""
import warnings

import pandas as pd
import pytest

from vpersona.calibrate.mixing import respondent_truth
from vpersona.data.wvs import load_bundled_sample
from vpersona.personas.build import build_personas
from vpersona.personas.tables import read_plan_table, write_plan


@pytest.fixture(scope="module")
def one_persona_plan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        survey = load_bundled_sample(["DEU", "JPN"])
    return survey, build_personas(survey, ["DEU", "JPN"], 1, 3, ["none", "value"], ["Q6", "Q29"])


def test_single_respondent_ids_read_back_as_text(tmp_path, one_persona_plan):
    survey, plan = one_persona_plan
    paths = write_plan(plan, tmp_path)
    personas = read_plan_table(paths["personas"])
    assert pd.api.types.is_string_dtype(personas["respondents"])
    assert not personas["respondents"].str.contains(";").any()  # one id each: looks like an int
    assert list(personas["respondents"]) == list(plan.personas["respondents"])
    truth = respondent_truth(read_plan_table(paths["pairs"]), personas, read_plan_table(paths["leakage"]), survey)
    expected = respondent_truth(plan.pairs, plan.personas, plan.leakage, survey)
    pd.testing.assert_frame_equal(truth, expected)
    assert len(truth) > 0


def test_integer_respondents_are_refused_with_the_reader_to_use(tmp_path, one_persona_plan):
    survey, plan = one_persona_plan
    paths = write_plan(plan, tmp_path)
    plain = pd.read_csv(paths["personas"], keep_default_na=False)
    assert pd.api.types.is_integer_dtype(plain["respondents"])  # the failure the issue saw
    with pytest.raises(TypeError, match="read_plan_table"):
        respondent_truth(read_plan_table(paths["pairs"]), plain, read_plan_table(paths["leakage"]), survey)
