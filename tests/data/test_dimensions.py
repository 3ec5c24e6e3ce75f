"""IW dimensions: varimax, sign conventions, scoring with missing items, published comparison."""
import warnings

import numpy as np
import pandas as pd
import pytest

from vpersona.data.dimensions import (ITEMS, compare_with_published, country_means, fit_iw_dimensions,
                                 target_rotation, varimax)
from vpersona.data.survey import Survey
from vpersona.data.synthetic import generate_sample, write_sample
from vpersona.data.wvs import load_wvs


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    frame = generate_sample(["AUS", "NGA", "JPN", "PAK"], 400, 11)
    path = write_sample(frame, tmp_path_factory.mktemp("dim") / "s.csv.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_wvs(path, items=list(ITEMS), not_asked="exclude")


def _same_up_to_order_and_sign(a, b, atol):
    return any(np.allclose(np.abs(a[:, order]), np.abs(b), atol=atol) for order in ([0, 1], [1, 0]))


def test_varimax_recovers_simple_structure():
    simple = np.array([[0.8, 0.1], [0.7, 0.0], [0.6, 0.2], [0.1, 0.8], [0.0, 0.7], [0.2, 0.5]])
    angle = 0.6
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mixed = simple @ turn
    assert (np.abs(mixed) > 0.3).sum() > 8            # the rotation hides the structure
    rotated, rotation = varimax(mixed)
    assert np.allclose(rotation.T @ rotation, np.eye(2))
    assert np.allclose(mixed @ rotation, rotated)
    assert _same_up_to_order_and_sign(rotated, varimax(simple)[0], atol=1e-6)   # rotation invariant
    assert _same_up_to_order_and_sign(rotated, simple, atol=0.1)                # simple structure back
    back, _ = target_rotation(mixed, np.repeat(np.eye(2), 3, axis=0))
    assert np.allclose(back, simple, atol=0.1)


def _respondent(answers: dict, survey: Survey) -> Survey:
    """A one-respondent Survey in the country AUS with the given IW answers."""
    row = pd.DataFrame({"country": ["AUS"], "weight": [1.0], **{k: [float(v)] for k, v in answers.items()}},
                       index=pd.Index(["x"], name="respondent"))
    return Survey(row, pd.DataFrame(0, index=row.index, columns=list(answers)), "hand-made", True)


TRADITIONAL = {"Q164": 10, "Y003": -2, "Q184": 1, "Q254": 1, "Q45": 1,
               "Q46": 4, "Y002": 1, "Q182": 1, "Q209": 3, "Q57": 2}
SECULAR = {"Q164": 1, "Y003": 2, "Q184": 10, "Q254": 4, "Q45": 3,
           "Q46": 1, "Y002": 3, "Q182": 10, "Q209": 1, "Q57": 1}


@pytest.mark.parametrize("rotation", ["varimax", "target"])
def test_traditional_answers_score_negative(survey, rotation):
    model = fit_iw_dimensions(survey, rotation=rotation)
    assert model.scores(_respondent(TRADITIONAL, survey)).iloc[0]["trad_secular"] < 0
    assert model.scores(_respondent(SECULAR, survey)).iloc[0]["trad_secular"] > 0


def test_signs_on_both_dimensions(survey):
    model = fit_iw_dimensions(survey)
    t = model.scores(_respondent(TRADITIONAL, survey)).iloc[0]
    s = model.scores(_respondent(SECULAR, survey)).iloc[0]
    assert t["trad_secular"] < 0 and t["surv_selfexp"] < 0
    assert s["trad_secular"] > 0 and s["surv_selfexp"] > 0
    assert (model.loadings.loc[["Q164", "Y003", "Q184", "Q254", "Q45"], "trad_secular"] > 0.3).all()
    assert (model.loadings.loc[["Y002", "Q182", "Q209"], "surv_selfexp"] > 0.3).all()


def test_scores_are_standardised_and_cover_missing(survey):
    model = fit_iw_dimensions(survey)
    scores = model.scores(survey)
    assert scores.index.equals(survey.responses.index)
    answered_any = survey.responses[list(ITEMS)].notna().any(axis=1)
    assert scores[answered_any].notna().all().all()
    complete = survey.responses[list(ITEMS)].notna().all(axis=1)
    w = survey.responses["weight"] / survey.responses.groupby("country")["weight"].transform("sum")
    for dim in scores.columns:
        x = scores.loc[complete, dim]
        mean = np.average(x, weights=w[complete])
        assert abs(mean) < 1e-8
        assert np.sqrt(np.average((x - mean) ** 2, weights=w[complete])) == pytest.approx(1.0, abs=1e-8)


def test_country_means_follow_published_order(survey):
    model = fit_iw_dimensions(survey, rotation="target")
    table, corr = compare_with_published(country_means(survey, model))
    assert corr["n"] == 4
    means = table.set_index("country")
    assert means.loc["JPN", "trad_secular"] > means.loc["NGA", "trad_secular"]
    assert means.loc["AUS", "surv_selfexp"] > means.loc["PAK", "surv_selfexp"]


def test_bad_arguments(survey):
    with pytest.raises(ValueError, match="weights"):
        fit_iw_dimensions(survey, weights="bogus")
    with pytest.raises(ValueError, match="rotation"):
        fit_iw_dimensions(survey, rotation="oblimin")
    lacking = Survey(survey.responses.drop(columns="Q57"), survey.missing.drop(columns="Q57"), "x")
    with pytest.raises(ValueError, match="Q57"):
        fit_iw_dimensions(lacking)


def test_compare_with_published_needs_three_countries_for_a_correlation():
    import math
    import pandas as pd
    means = pd.DataFrame({"trad_secular": [0.5, -1.0], "surv_selfexp": [1.0, -0.5]}, index=pd.Index(["AUS", "NGA"], name="country"))
    table, corr = compare_with_published(means)
    assert len(table) == 2 and corr["n"] == 2
    assert math.isnan(corr["trad_secular"]) and math.isnan(corr["surv_selfexp"])
