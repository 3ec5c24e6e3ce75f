"""Known-answer tests for the calibrate stage: mean-preserving temperature, persona mixing, held-out splits."""
import numpy as np
import pandas as pd
import pytest

from vpersona.calibrate.aggregate import aggregate
from vpersona.calibrate.mixing import PersonaMixing
from vpersona.calibrate.temperature import MeanPreservingTemperature, mean_preserving_temperature
from vpersona.core.distributions import from_matrix, to_matrix
from vpersona.evaluate.metrics import entropy, mean_answer, sd_answer
from vpersona.calibrate.splits import ItemCountryFold, ItemKFold, LeaveCountriesOut, cross_fit

X = np.arange(10)
# Real catalog items by scale length: K=4 (Q1, Q6, Q27..Q30), K=10 (Q48, Q49, Q50, Q106), K=5 (Q33, Q35).
ORDINAL_ITEMS = {"Q1": 4, "Q6": 4, "Q27": 4, "Q28": 4, "Q29": 4, "Q30": 4, "Q48": 10, "Q49": 10, "Q50": 10,
                 "Q106": 10, "Q33": 5, "Q35": 5}
COUNTRIES = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]


def random_rows(n, k, rng, concentration=0.5, zeros=False):
    P = np.zeros((n, 10))
    P[:, :k] = rng.dirichlet(np.full(k, concentration), size=n)
    if zeros:
        P[:, 0] = 0.0  # one option nobody chose
        P /= P.sum(axis=1, keepdims=True)
    return P


def sharp_table(rng, items=ORDINAL_ITEMS, countries=COUNTRIES):
    """Concentrated 'LLM-like' distributions for every (country, item)."""
    keys = pd.DataFrame([(c, i) for c in countries for i in items], columns=["country", "item"])
    K = keys["item"].map(items).to_numpy()
    P = np.zeros((len(keys), 10))
    for k in np.unique(K):
        P[K == k] = random_rows(int((K == k).sum()), int(k), rng, concentration=0.3)
    return from_matrix(keys, P, K)


def widen(table, tau_of_K):
    P, K = to_matrix(table)
    tau = np.array([tau_of_K[k] for k in K])
    return from_matrix(table[["country", "item"]], mean_preserving_temperature(P, tau, np.ones(len(K), bool)), K)


@pytest.mark.parametrize("tau", [0.5, 1.7, 4.0, 15.0])
@pytest.mark.parametrize("k", [3, 4, 10])
def test_mean_is_preserved_to_1e9(tau, k):
    rng = np.random.default_rng(k)
    P = np.vstack([random_rows(300, k, rng), random_rows(100, k, rng, zeros=True),
                   random_rows(50, k, rng, concentration=0.02)])  # nearly point masses
    out = mean_preserving_temperature(P, tau, np.ones(len(P), bool))
    assert np.abs(mean_answer(out) - mean_answer(P)).max() < 1e-9
    assert np.allclose(out.sum(axis=1), 1.0) and (out >= 0).all()
    assert (out[300:400, 0] == 0).all()  # zero-probability options stay zero
    assert (out[:, k:] == 0).all()  # nothing leaks past K


def unimodal_rows(n, rng):
    """Discretised normal shapes with random scale length, centre and width (LLM-like, one peak)."""
    K = rng.integers(3, 11, n)
    centre, width = rng.uniform(0, 1, n) * (K - 1), rng.uniform(0.3, 2.0, n)
    U = np.exp(-0.5 * ((X[None] - centre[:, None]) / width[:, None]) ** 2) * (X[None] < K[:, None])
    return U / U.sum(axis=1, keepdims=True)


TAUS = [0.3, 0.6, 1.0, 1.5, 2.5, 4.0, 8.0]


def test_sd_increases_monotonically_with_tau_for_single_peaked_distributions():
    P = unimodal_rows(500, np.random.default_rng(2))
    sds = np.array([sd_answer(mean_preserving_temperature(P, t, np.ones(len(P), bool))) for t in TAUS])
    assert (np.diff(sds, axis=0) > 0).all()


def test_entropy_increases_with_tau_for_any_distribution_but_sd_need_not():
    P = random_rows(500, 5, np.random.default_rng(2))  # Dirichlet(0.5): many U-shaped rows
    runs = [mean_preserving_temperature(P, t, np.ones(len(P), bool)) for t in TAUS]
    H = np.array([entropy(r) for r in runs])
    assert (np.diff(H, axis=0) > -1e-12).all()
    # A U-shaped distribution flattened at a fixed mean moves mass to the middle: its sd shrinks.
    u = np.zeros((1, 10))
    u[0, :4] = [0.45, 0.1, 0.0, 0.45]
    assert sd_answer(mean_preserving_temperature(u, 4.0, [True]))[0] < sd_answer(u)[0]


def test_tau_one_is_the_identity_and_two_options_are_fixed_by_their_mean():
    rng = np.random.default_rng(3)
    P = random_rows(100, 6, rng)
    assert np.array_equal(mean_preserving_temperature(P, 1.0, np.ones(100, bool)), P)
    B = random_rows(50, 2, rng)
    assert np.allclose(mean_preserving_temperature(B, 3.0, np.ones(50, bool)), B, atol=1e-12)


def test_a_floor_does_not_move_the_mean():
    # the floor mixes in the uniform distribution (mean in the middle); the mean kept is the one before it
    pred = sharp_table(np.random.default_rng(5))
    for tau in (1.0, 2.5):
        out = MeanPreservingTemperature(tau=tau, floor=0.05).fit(pred, pred).transform(pred)
        (P, K), (Q, _) = to_matrix(pred), to_matrix(out)  # every item here is ordered
        np.testing.assert_allclose(mean_answer(Q), mean_answer(P), atol=1e-9)
        assert (Q[np.arange(len(K)), K - 1] > 0).all() and (Q[:, :4] > 0).all()  # no option left at 0


def test_nominal_items_get_plain_temperature():
    P = np.zeros((1, 10))
    P[0, :4] = [0.7, 0.2, 0.1, 0.0]
    out = mean_preserving_temperature(P, 2.0, [False])
    expected = np.sqrt([0.7, 0.2, 0.1, 0.0])
    assert np.allclose(out[0, :4], expected / expected.sum())


def test_wider_distribution_of_known_form():
    # A symmetric distribution keeps lambda = 0: the result is plain temperature.
    P = np.zeros((1, 10))
    P[0, :3] = [0.1, 0.8, 0.1]
    out = mean_preserving_temperature(P, 2.0, [True])
    s = np.sqrt([0.1, 0.8, 0.1])
    assert np.allclose(out[0, :3], s / s.sum(), atol=1e-12)


@pytest.mark.parametrize("objective", ["jsd", "diversity"])
def test_fitted_tau_recovers_the_true_tau(objective):
    pred = sharp_table(np.random.default_rng(4))
    human = widen(pred, {4: 2.5, 5: 2.5, 10: 2.5})
    cal = MeanPreservingTemperature(objective=objective).fit(pred, human)
    assert cal.tau_ == pytest.approx(2.5, rel=1e-3)
    assert cal.params["tau"] == cal.tau_ and cal.params["objective"] == objective


def test_per_scale_length_fit_recovers_each_tau():
    pred = sharp_table(np.random.default_rng(5))
    truth = {4: 1.5, 5: 3.0, 10: 4.0}
    cal = MeanPreservingTemperature(per_scale_length=True).fit(pred, widen(pred, truth))
    for k, tau in truth.items():
        assert cal.tau_[k] == pytest.approx(tau, rel=1e-3)
    calibrated = cal.transform(pred)
    P, _ = to_matrix(calibrated)
    H, _ = to_matrix(widen(pred, truth))
    assert np.allclose(P, H, atol=1e-6)


def test_apply_keeps_columns_and_missing_rows_and_fixed_tau_needs_no_fit():
    pred = sharp_table(np.random.default_rng(6)).assign(method="value")
    pred.loc[0, [f"p{k}" for k in range(1, 11)]] = np.nan  # a refused cell
    out = MeanPreservingTemperature(tau=2.0).fit(pred, pred).transform(pred)
    assert list(out.columns) == list(pred.columns) and out.loc[0, ["p1", "p2"]].isna().all()
    with pytest.raises(RuntimeError, match="fit"):
        MeanPreservingTemperature().transform(pred)
    with pytest.raises(ValueError, match="scale lengths"):
        MeanPreservingTemperature(tau={4: 2.0}).fit(pred, pred).transform(pred)
    with pytest.raises(ValueError, match="objective"):
        MeanPreservingTemperature(objective="mse").fit(pred, pred)


def test_fit_refuses_several_methods_at_once():
    pred = sharp_table(np.random.default_rng(7))
    both = pd.concat([pred.assign(kind="a"), pred.assign(kind="b")])
    with pytest.raises(ValueError, match="one calibrator per"):
        MeanPreservingTemperature().fit(both, pred)


# --- splits and cross-fitting ------------------------------------------------------------------

def test_item_kfold_is_a_seeded_partition():
    cells = sharp_table(np.random.default_rng(8))
    folds = list(ItemKFold(k=4, seed=1).split(cells))
    tested = pd.concat([t for _, t in folds])
    assert len(tested) == len(cells) and not tested.duplicated().any()
    for fit, test in folds:
        assert set(fit["item"]).isdisjoint(test["item"]) and set(fit["country"]) == set(COUNTRIES)
    again = list(ItemKFold(k=4, seed=1).split(cells))
    assert all(a[1].equals(b[1]) for a, b in zip(folds, again))
    assert not all(a[1].equals(b[1]) for a, b in zip(folds, ItemKFold(k=4, seed=2).split(cells)))


def test_leave_countries_out_with_given_groups_and_random_groups():
    cells = sharp_table(np.random.default_rng(9))
    zones = {"AAA": "z1", "BBB": "z1", "CCC": "z2", "DDD": "z2", "EEE": "z3", "FFF": "z3"}
    folds = list(LeaveCountriesOut(zones).split(cells))
    assert [sorted(set(t["country"])) for _, t in folds] == [["AAA", "BBB"], ["CCC", "DDD"], ["EEE", "FFF"]]
    assert len(list(LeaveCountriesOut(6).split(cells))) == 6  # leave-one-country-out
    with pytest.raises(ValueError, match="no group"):
        list(LeaveCountriesOut({"AAA": "z1"}).split(cells))


def test_item_country_fold_never_fits_on_a_tested_item_or_country():
    cells = sharp_table(np.random.default_rng(10))
    split = ItemCountryFold(ItemKFold(k=3, seed=0), LeaveCountriesOut(3, seed=0))
    folds = list(split.split(cells))
    assert len(folds) == 9 and sum(len(t) for _, t in folds) == len(cells)
    for fit, test in folds:
        assert set(fit["item"]).isdisjoint(test["item"]) and set(fit["country"]).isdisjoint(test["country"])


def test_cross_fit_scores_every_cell_once_with_params_per_fold():
    pred = sharp_table(np.random.default_rng(11))
    human = widen(pred, {4: 2.0, 5: 2.0, 10: 2.0})
    out, params = cross_fit(MeanPreservingTemperature(), pred.assign(kind="value"), human,
                            ItemKFold(k=3, seed=0), by="kind")
    assert len(out) == len(pred) and not out.duplicated(["country", "item"]).any()
    assert list(params["fold"]) == [0, 1, 2] and (params["kind"] == "value").all()
    assert np.allclose(params["tau"], 2.0, rtol=1e-3)
    merged = out.merge(human, on=["country", "item"], suffixes=("", "_h"))
    assert np.allclose(merged[[f"p{k}" for k in range(1, 11)]].to_numpy(),
                       merged[[f"p{k}_h" for k in range(1, 11)]].to_numpy(), atol=1e-6)


def test_cross_fit_never_fits_on_the_cells_it_tests():
    # mutation-proof: each item's humans are its predictions widened by its own tau (1.2 .. 6), so
    # the tau a fold fits depends on exactly which items it fits on. Each fold's tau must be the
    # one fitted on the *other* folds' items alone, not the tau of all cells.
    pred = sharp_table(np.random.default_rng(12)).assign(kind="value")
    item_tau = dict(zip(ORDINAL_ITEMS, np.linspace(1.2, 6.0, len(ORDINAL_ITEMS))))
    human = pd.concat([widen(pred[pred["item"] == i], {ORDINAL_ITEMS[i]: t}) for i, t in item_tau.items()],
                      ignore_index=True)
    out, params = cross_fit(MeanPreservingTemperature(), pred, human, ItemKFold(k=3, seed=0), by="kind")
    every = MeanPreservingTemperature().fit(pred, human).params["tau"]
    for fold, test in out.groupby("fold"):
        fit_on = pred[~pred["item"].isin(test["item"])]
        alone = MeanPreservingTemperature().fit(fit_on, human).params["tau"]
        assert params.loc[params["fold"] == fold, "tau"].iloc[0] == pytest.approx(alone, rel=1e-6)
    assert (params["tau"] - every).abs().max() > 0.05  # so a fit on every cell would be told apart


# --- persona mixing ----------------------------------------------------------------------------

def persona_answers(rng, n_personas=400, k=4, item="Q1"):
    P = random_rows(n_personas, k, rng, concentration=0.4)
    frame = pd.DataFrame({"persona_id": [f"p{i}" for i in range(n_personas)], "country": "AAA",
                          "kind": "value", "item": item, "multiplicity": rng.integers(1, 4, n_personas),
                          "replicate": 0})
    return from_matrix(frame, P, np.full(n_personas, k))


def test_persona_mixing_keeps_the_aggregate_and_widens_personas():
    answers = persona_answers(np.random.default_rng(12))
    mixed = PersonaMixing(alpha=0.4).fit(answers, None).transform(answers)
    a, b = aggregate(answers), aggregate(mixed)
    assert np.allclose(to_matrix(a)[0], to_matrix(b)[0], atol=1e-12)
    P, _ = to_matrix(answers)
    Pm, _ = to_matrix(mixed)
    assert (sd_answer(Pm).mean() > sd_answer(P).mean())
    assert np.allclose(to_matrix(PersonaMixing(alpha=0.0).fit(answers, None).transform(answers))[0], P)
    full = to_matrix(PersonaMixing(alpha=1.0).fit(answers, None).transform(answers))[0]
    assert np.allclose(full, to_matrix(a)[0][0])


def test_persona_mixing_fit_recovers_alpha():
    rng = np.random.default_rng(13)
    answers = persona_answers(rng, n_personas=3000)
    true_alpha = 0.35
    truth_dist = to_matrix(PersonaMixing(alpha=true_alpha).fit(answers, None).transform(answers))[0]
    codes = (truth_dist.cumsum(axis=1) > rng.uniform(size=(len(truth_dist), 1))).argmax(axis=1) + 1
    truth = pd.DataFrame({"persona_id": answers["persona_id"], "item": "Q1", "answer": codes})  # Q1 codes 1..4
    fitted = PersonaMixing().fit(answers, truth)
    assert fitted.alpha_ == pytest.approx(true_alpha, abs=0.05)
    assert fitted.params == {"alpha": fitted.alpha_, "objective": "loglik"}
    with pytest.raises(ValueError, match="truth table lacks"):
        PersonaMixing().fit(answers, truth.drop(columns="answer"))


def test_respondent_truth_follows_the_leakage_variant_and_draws():
    import warnings as _w
    from vpersona.calibrate.mixing import respondent_truth
    from vpersona.personas.build import build_personas
    from vpersona.data.wvs import load_bundled_sample
    with _w.catch_warnings():
        _w.simplefilter("ignore")
        survey = load_bundled_sample(["DEU"])
    plan = build_personas(survey, ["DEU"], 6, 1, ["value"], ["Q6", "Q29"])
    truth = respondent_truth(plan.pairs, plan.personas, plan.leakage, survey)
    # one row per draw and item, minus respondents who did not answer
    draws = plan.draws["respondent"]
    expected = sum(int(survey.responses.loc[draws, item].notna().sum()) for item in ("Q6", "Q29"))
    assert len(truth) == expected
    # every answer is the respondent's own; Q6 is matched to the persona variant without Q164
    q6 = truth[truth["item"] == "Q6"]
    variant = plan.personas.set_index("persona_id").loc[q6["persona_id"].unique(), "excluded"]
    assert set(variant) == {"Q164"}
    assert sorted(q6["answer"]) == sorted(survey.responses.loc[draws, "Q6"].dropna().astype(int))


def test_mean_loglik_by_hand_and_mixing_toward_the_population():
    import pandas as pd
    from vpersona.calibrate.mixing import mean_loglik
    answers = pd.DataFrame({"persona_id": ["a", "b"], "country": "X", "kind": "value", "item": "Q150",
                            "multiplicity": [1, 1], "replicate": 0, "K": 2,
                            "p1": [0.9, 0.1], "p2": [0.1, 0.9]})
    truth = pd.DataFrame({"persona_id": ["a", "b"], "country": "X", "kind": "value", "item": "Q150",
                          "answer": [1, 1], "weight": [1.0, 1.0]})
    assert mean_loglik(answers, truth) == pytest.approx((np.log(0.9) + np.log(0.1)) / 2)
    mixed = PersonaMixing(alpha=1.0).fit(answers, truth).transform(answers)
    assert mean_loglik(mixed, truth) == pytest.approx(np.log(0.5))
