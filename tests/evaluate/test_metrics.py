"""Known-answer tests for the metrics (vpersona/metrics.py)."""
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from vpersona.core.distributions import from_matrix
from vpersona.evaluate.metrics import (METRICS, cell_metrics, entropy, jsd, mean_error, score, sd_answer, summarise,
                              wasserstein)


def rows(*dists):
    P = np.zeros((len(dists), 10))
    for i, d in enumerate(dists):
        P[i, : len(d)] = d
    return P


def table(cells, **keys):
    """cells: list of (country, item, dist)."""
    K = [len(d) for _, _, d in cells]
    frame = pd.DataFrame({"country": [c for c, _, _ in cells], "item": [i for _, i, _ in cells], **keys})
    return from_matrix(frame, rows(*[d for _, _, d in cells]), K)


def test_identical_distributions_score_zero_and_ratio_one():
    P = rows([0.1, 0.2, 0.3, 0.4], [0.5, 0.5], [0.05] * 10 + [])
    m = cell_metrics(P, P.copy(), [4, 2, 10], [True, True, True])
    for name in ("jsd", "w1", "mean_error"):
        assert np.allclose(m[name], 0.0, atol=1e-7), name
    assert np.allclose(m["diversity_ratio"], 1.0) and np.allclose(m["entropy_ratio"], 1.0)


def test_disjoint_supports_have_jsd_one_and_extreme_w1():
    P, Q = rows([1, 0, 0], [0.5, 0.5, 0, 0]), rows([0, 0, 1], [0, 0, 0.5, 0.5])
    assert np.allclose(jsd(P, Q), 1.0)
    assert np.allclose(wasserstein(P, Q, [3, 4]), [1.0, 2 / 3])
    assert np.allclose(mean_error(P, Q, [3, 4]), [1.0, 2 / 3])


def test_hand_computed_jsd():
    # P = (1/2, 1/2), Q = (1, 0), M = (3/4, 1/4)
    kl_pm = 0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25)
    kl_qm = np.log2(1 / 0.75)
    expected = np.sqrt(0.5 * kl_pm + 0.5 * kl_qm)
    assert jsd(rows([0.5, 0.5]), rows([1.0, 0.0]))[0] == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.557923, abs=1e-6)  # sqrt(0.311278)


def test_hand_computed_w1_mean_sd_entropy():
    P, Q = rows([0.5, 0, 0.5]), rows([0, 1, 0])
    assert wasserstein(P, Q, [3])[0] == pytest.approx(0.5)  # cdf gaps 0.5 + 0.5, over K-1 = 2
    assert mean_error(P, Q, [3])[0] == pytest.approx(0.0)  # same mean answer
    assert sd_answer(P)[0] == pytest.approx(1.0) and sd_answer(Q)[0] == 0.0
    m = cell_metrics(P, Q, [3], [True])
    assert np.isnan(m["diversity_ratio"][0]) and np.isnan(m["entropy_ratio"][0])  # human spread 0
    assert entropy(rows([0.25] * 4))[0] == pytest.approx(2.0)
    ratio = cell_metrics(rows([0.25] * 4), rows([0.5, 0.5, 0, 0]), [4], [True])
    assert ratio["entropy_ratio"][0] == pytest.approx(2.0)
    assert ratio["diversity_ratio"][0] == pytest.approx(np.sqrt(1.25) / 0.5)
    assert ratio["mean_error"][0] == pytest.approx(1.0 / 3)  # means 1.5 vs 0.5 over K-1 = 3


def test_nominal_items_have_no_order_metrics():
    m = cell_metrics(rows([0.7, 0.1, 0.1, 0.1]), rows([0.1, 0.1, 0.1, 0.7]), [4], [False])
    assert np.isnan(m["w1"][0]) and np.isnan(m["mean_error"][0]) and np.isnan(m["diversity_ratio"][0])
    assert 0 < m["jsd"][0] < 1 and m["entropy_ratio"][0] == pytest.approx(1.0)


def test_vectorised_metrics_agree_with_scipy_row_by_row():
    rng = np.random.default_rng(0)
    K = rng.integers(2, 11, size=200)
    P, Q = np.zeros((200, 10)), np.zeros((200, 10))
    for i, k in enumerate(K):
        P[i, :k], Q[i, :k] = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k) * 0.3)
    ours_j, ours_w = jsd(P, Q), wasserstein(P, Q, K)
    for i, k in enumerate(K):
        assert ours_j[i] == pytest.approx(jensenshannon(P[i, :k], Q[i, :k], base=2), abs=1e-9)
        x = np.arange(k)
        assert ours_w[i] * (k - 1) == pytest.approx(wasserstein_distance(x, x, P[i, :k], Q[i, :k]), abs=1e-9)
    assert (ours_j >= 0).all() and (ours_j <= 1).all()


def test_score_matches_pred_keys_and_counts_unscored_cells():
    human = table([("AAA", "Q1", [0.1, 0.2, 0.3, 0.4]), ("AAA", "Q152", [0.25] * 4), ("BBB", "Q1", [1, 0, 0, 0])])
    pred = pd.concat([
        table([("AAA", "Q1", [0.1, 0.2, 0.3, 0.4]), ("AAA", "Q152", [0.25] * 4), ("BBB", "Q1", [0, 0, 0, 1]),
               ("CCC", "Q1", [0.25] * 4)], method="same"),
        table([("AAA", "Q1", [0.4, 0.3, 0.2, 0.1])], method="reversed"),
    ], ignore_index=True)
    cells = score(pred, human)
    assert cells.attrs["unscored"] == 1  # CCC has no human distribution
    assert list(cells.columns[:4]) == ["country", "item", "method", "K"] and set(METRICS) <= set(cells.columns)
    same = cells[cells["method"] == "same"].set_index(["country", "item"])
    assert same.loc[("AAA", "Q1"), "jsd"] == pytest.approx(0, abs=1e-7)
    assert same.loc[("BBB", "Q1"), "jsd"] == pytest.approx(1) and same.loc[("BBB", "Q1"), "w1"] == pytest.approx(1)
    assert np.isnan(same.loc[("AAA", "Q152"), "w1"])  # nominal
    rev = cells[cells["method"] == "reversed"].iloc[0]
    assert rev["mean_error"] == pytest.approx(1.0 / 3)  # means 2 vs 1, over K-1 = 3


def test_score_errors_name_the_problem():
    human = table([("AAA", "Q1", [0.1, 0.2, 0.3, 0.4])])
    with pytest.raises(ValueError, match="disagree on the number of options"):
        score(table([("AAA", "Q1", [0.5, 0.5])]), human)
    with pytest.raises(ValueError, match="lacks columns"):
        score(human.drop(columns="K"), human)
    with pytest.raises(ValueError, match="several rows"):
        score(human, pd.concat([human, human]))


def test_summarise_means_and_seeded_bootstrap_intervals():
    rng = np.random.default_rng(1)
    cells = pd.DataFrame({"method": "m", "country": np.repeat(["AAA", "BBB"], 50), "item": np.tile(range(50), 2),
                          "jsd": rng.uniform(0, 1, 100), "w1": np.r_[rng.uniform(0, 1, 50), np.full(50, 0.3)]})
    cells.loc[3, "w1"] = np.nan  # a nominal item: left out of w1 only
    s = summarise(cells, n_boot=2000, seed=3)
    a = s.set_index("country").loc["AAA"]
    assert a["n_items"] == 50 and a["jsd"] == pytest.approx(cells["jsd"][:50].mean())
    assert a["w1"] == pytest.approx(cells["w1"][:50].mean(skipna=True))
    assert a["jsd_lo"] < a["jsd"] < a["jsd_hi"]
    half_width = (a["jsd_hi"] - a["jsd_lo"]) / 2
    assert half_width == pytest.approx(1.96 * cells["jsd"][:50].std() / np.sqrt(50), rel=0.2)
    b = s.set_index("country").loc["BBB"]
    assert b["w1_lo"] == pytest.approx(0.3) and b["w1_hi"] == pytest.approx(0.3)  # constant values
    again = summarise(cells, n_boot=2000, seed=3)
    pd.testing.assert_frame_equal(s, again)
    alone = summarise(cells[cells["country"] == "AAA"], n_boot=2000, seed=3)  # other groups don't matter
    assert alone.iloc[0]["jsd_lo"] == a["jsd_lo"]
    assert summarise(cells, n_boot=2000, seed=4).iloc[0]["jsd_lo"] != a["jsd_lo"]


def test_summarise_rejects_unknown_grouping():
    with pytest.raises(ValueError, match="not columns"):
        summarise(pd.DataFrame({"country": ["A"], "jsd": [0.1]}), by=("method", "country"))


def test_summarise_counts_items_not_cells_and_names_its_unit():
    # 6 items shared by 5 countries, a strong item effect: the item interval is wider than the cell one
    rng = np.random.default_rng(2)
    item_effect = rng.normal(0, 0.2, 6)
    cells = pd.DataFrame({"method": "m", "country": np.repeat(list("ABCDE"), 6), "item": np.tile(range(6), 5)})
    cells["jsd"] = 0.5 + item_effect[cells["item"]] + rng.normal(0, 0.01, len(cells))
    by_items = summarise(cells, by="method", n_boot=1000).iloc[0]
    by_cells = summarise(cells, by="method", unit="cells", n_boot=1000).iloc[0]
    assert (by_items["n_cells"], by_items["n_items"], by_items["n_countries"], by_items["unit"]) == (30, 6, 5, "items")
    assert by_items["jsd"] == pytest.approx(by_cells["jsd"])
    assert (by_items["jsd_hi"] - by_items["jsd_lo"]) > 1.8 * (by_cells["jsd_hi"] - by_cells["jsd_lo"])
    per_country = summarise(cells, by=["method", "country"], unit="countries", n_boot=100)
    assert per_country["jsd_lo"].isna().all()  # one country per group: nothing to resample


def test_summary_intervals_stay_in_the_metrics_range():
    """A bootstrap-t interval over a few items can reach past the metric's range (seen: JSD
    [0.311, 1.293] on 6 items); the summary cuts it to [0, 1]."""
    import pandas as pd

    from vpersona.evaluate.metrics import summarise

    jsd = [0.02, 0.03, 0.02, 0.04, 0.03, 0.95]
    cells = pd.DataFrame({"method": "m", "country": ["AAA", "BBB"] * 3, "item": [f"Q{i}" for i in range(6)],
                          "jsd": jsd})
    row = summarise(cells, by="method", metrics=("jsd",)).iloc[0]
    assert 0.0 <= row["jsd_lo"] <= row["jsd"] <= row["jsd_hi"] <= 1.0, row[["jsd_lo", "jsd", "jsd_hi"]].tolist()
