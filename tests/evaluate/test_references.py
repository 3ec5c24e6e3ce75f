"""Reference rows (vpersona/references.py) on hand-made Surveys with known answers."""
import numpy as np
import pandas as pd
import pytest

from vpersona.core.distributions import from_matrix, to_matrix
from vpersona.evaluate.metrics import score
from vpersona.evaluate.references import (average_draws, global_reference, human_sample_distributions, reference_distributions,
                                 regression_reference, uniform_reference, value_features)
from vpersona.data.survey import Survey
from vpersona.data.targets import human_distributions


def linked_survey(n=300, seed=0):
    """Four countries whose Q46 (happiness, 4 options) differs; Q1 = Q46 for everyone, Q36 = Q182 band.

    A value profile therefore determines Q1 exactly, the same way in every country. Q182 is low
    in AUS and high in NGA, so Q36 differs by country and only Q182 (its proxy) would reveal it.
    """
    rng = np.random.default_rng(seed)
    frames = []
    q182_range = {"AUS": (1, 5), "NZL": (1, 11), "NGA": (6, 11), "BRA": (1, 11)}
    for country, shares in {"AUS": [0.7, 0.2, 0.05, 0.05], "NZL": [0.1, 0.6, 0.2, 0.1],
                            "NGA": [0.05, 0.15, 0.3, 0.5], "BRA": [0.25, 0.25, 0.25, 0.25]}.items():
        q46 = rng.choice([1, 2, 3, 4], size=n, p=shares)
        frames.append(pd.DataFrame({"country": country, "weight": rng.uniform(0.5, 1.5, n), "Q46": q46,
                                    "Q1": q46, "Q57": rng.choice([1, 2], size=n),
                                    "Q182": rng.integers(*q182_range[country], n)}))
    resp = pd.concat(frames, ignore_index=True)
    resp["Q36"] = np.ceil(resp["Q182"] / 2)  # Q36 (K=5) is Q182's declared proxy
    resp.index = pd.Index([f"r{i}" for i in range(len(resp))], name="respondent")
    items = ["Q46", "Q1", "Q57", "Q182", "Q36"]
    resp[items] = resp[items].astype(float)
    missing = pd.DataFrame(0, index=resp.index, columns=items)
    return Survey(resp, missing, source="hand-made linked survey", synthetic=True)


def test_uniform_and_global_references():
    human = from_matrix(pd.DataFrame({"country": ["A", "B", "C", "A"], "item": ["Q57"] * 3 + ["Q1"]}),
                        np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0.5, 0.5, 0, 0], [0.1, 0.2, 0.3, 0.4]]),
                        [2, 2, 2, 4])
    u = uniform_reference(human)
    assert (u["method"] == "uniform").all() and np.allclose(to_matrix(u)[0][3, :4], 0.25)
    g = global_reference(human).set_index("country")
    assert len(g) == 3  # Q1 is asked only in A: no other country to pool
    assert np.allclose(g.loc["A", ["p1", "p2"]].to_numpy(float), [0.25, 0.75])  # mean of B and C
    assert np.allclose(g.loc["C", ["p1", "p2"]].to_numpy(float), [0.5, 0.5])
    pooled = global_reference(human, leave_out=False).set_index(["country", "item"])
    assert np.allclose(pooled.loc[("A", "Q57"), ["p1", "p2"]].to_numpy(float), [0.5, 0.5])


def test_human_n_converges_to_the_weighted_population_and_is_seeded():
    s = linked_survey()
    human = human_distributions(s, ["Q1"])
    big = human_sample_distributions(s, ["Q1"], sizes=(20000,), n_draws=2, seed=1)
    cells = score(big, human)
    assert cells["jsd"].max() < 0.01  # weighted sampling reproduces the weighted shares
    small = human_sample_distributions(s, ["Q1"], sizes=(25, 400), n_draws=30, seed=1)
    assert set(small["method"]) == {"human-25", "human-400"} and small["draw"].nunique() == 30
    again = human_sample_distributions(s, ["Q1"], sizes=(25, 400), n_draws=30, seed=1)
    pd.testing.assert_frame_equal(small, again)
    per_cell = average_draws(score(small, human))
    assert (per_cell["n_draws"] == 30).all() and "draw" not in per_cell.columns
    by_n = per_cell.groupby("method")["jsd"].mean()
    assert by_n["human-400"] < by_n["human-25"]  # the sampling error of N answers falls with N


def test_regression_learns_a_shared_value_target_link_leave_country_out():
    s = linked_survey()
    human = human_distributions(s, ["Q1", "Q36"])
    reg = regression_reference(s, ["Q1", "Q36"], value_items=["Q46", "Q57", "Q182"], encoding="onehot")
    assert (reg["method"] == "regression").all() and len(reg) == 8
    cells = score(reg, human).set_index(["country", "item"])
    glob = score(global_reference(human), human).set_index(["country", "item"])
    q1 = cells.xs("Q1", level="item")["jsd"]
    assert (q1 < 0.1).all() and (q1 < glob.xs("Q1", level="item")["jsd"]).all()
    # Q182 is Q36's declared proxy: it is dropped, so Q36 cannot be read off the profile.
    assert reg.attrs["dropped_features"]["Q36"] == ["Q182"] and reg.attrs["dropped_features"]["Q1"] == []
    q36 = cells.xs("Q36", level="item")["jsd"]
    assert q36["AUS"] > 0.3 and q36["NGA"] > 0.3


def test_regression_zone_folds_subsample_and_persona_sample():
    s = linked_survey()
    numeric = regression_reference(s, ["Q1"], value_items=["Q46", "Q57"], max_train_per_country=100)
    assert len(numeric) == 4 and numeric.attrs["encoding"] == "numeric"
    aus = s.responses.index[(s.responses["country"] == "AUS") & (s.responses["Q46"] == 4)][:3]
    mirrored = regression_reference(s, ["Q1"], value_items=["Q46", "Q57"], encoding="onehot",
                                    sample=pd.DataFrame({"country": "AUS", "respondent": aus}))
    assert mirrored.set_index("country").loc["AUS", "p4"] > 0.8  # mean over 3 sampled respondents with Q46 = 4
    by_zone = regression_reference(s, ["Q1"], value_items=["Q46", "Q57"], folds="zone")
    assert len(by_zone) == 4 and by_zone.attrs["folds"] == "zone"
    english = Survey(s.responses[s.responses["country"].isin(["AUS", "NZL"])], s.missing, s.source)
    with pytest.raises(ValueError, match="at least two cultural zones"):
        regression_reference(english, ["Q1"], value_items=["Q46"], folds="zone")


def test_value_features_numeric_and_onehot_with_missing_indicator():
    s = linked_survey(n=5)
    s.responses.iloc[0, s.responses.columns.get_loc("Q46")] = np.nan
    F, names = value_features(s, ["Q46"], encoding="numeric")
    assert [n for _, n in names] == ["Q46_pos", "Q46_missing"]
    assert F[0].tolist() == [0.0, 1.0] and F[1, 1] == 0.0
    F1, names1 = value_features(s, ["Q46"], encoding="onehot")
    assert F1.shape[1] == 5 and F1[0].tolist() == [0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="encoding"):
        value_features(s, ["Q46"], encoding="ordinal")


def test_reference_distributions_like_for_like_with_persona_draws():
    s = linked_survey()
    human = human_distributions(s, ["Q1"])
    rng = np.random.default_rng(0)
    # 3 draws per country, all with Q46 = 4 (so Q1 = 4 for the sampled respondents)
    draws = pd.concat([pd.DataFrame({"country": c, "draw": range(3), "respondent": rng.choice(
        s.responses.index[(s.responses["country"] == c) & (s.responses["Q46"] == 4)], 3)})
        for c in ["AUS", "NZL", "NGA", "BRA"]], ignore_index=True)
    refs = reference_distributions(s, human, ["Q1"], sizes=(25,), n_draws=2, draws=draws,
                                   value_items=["Q46", "Q57"], encoding="onehot")
    assert {"human-3", "human-25", "regression", "regression-all"} <= set(refs["method"])
    reg = refs[refs["method"] == "regression"].set_index("country")
    assert (reg["p4"] > 0.8).all()  # predicts from the 3 sampled respondents, not the country
    plain = regression_reference(s, ["Q1"], value_items=["Q46", "Q57"], encoding="onehot").drop(columns="method")
    every = refs.loc[refs["method"] == "regression-all", plain.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(every, plain.reset_index(drop=True), check_dtype=False)
    no_draws = reference_distributions(s, human, ["Q1"], sizes=(25,), n_draws=2, n_personas=7,
                                       value_items=["Q46", "Q57"])
    assert set(no_draws["method"]) == {"uniform", "global", "human-7", "human-25", "regression"}


def test_regression_never_trains_on_the_country_it_predicts(country_only_link):
    # mutation-proof: trained on the held-out country too, BRA's Q1 would be read off Q182 (JSD ~0)
    s = country_only_link
    for encoding in ("onehot", "numeric"):
        reg = regression_reference(s, ["Q1"], value_items=["Q182", "Q57"], encoding=encoding)
        cells = score(reg, human_distributions(s, ["Q1"])).set_index("country")["jsd"]
        assert cells["BRA"] > 0.6, (encoding, cells)  # predicted like the other countries: mostly 1, 2
        assert cells["BRA"] > cells.drop("BRA").max() + 0.3, (encoding, cells)
