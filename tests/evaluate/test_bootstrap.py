"""Cluster bootstrap: units, determinism, and coverage on simulated data with known variance."""
import numpy as np
import pandas as pd
import pytest

from vpersona.evaluate.bootstrap import coverage, mean_interval, n_units, simulated_cells


def test_coverage_item_bootstrap_near_nominal_cell_bootstrap_undercovers():
    # between-item sd 1, cell noise 1, 30 items x 8 countries: the true sd of the mean is ~0.19, the
    # cell bootstrap's ~0.09, so it covers ~65%; the item bootstrap ~93%.
    design = dict(n_items=30, n_countries=8, item_sd=1.0, cell_sd=1.0)
    items = coverage(200, "items", n_boot=400, seed=1, interval="percentile", **design)
    cells = coverage(200, "cells", n_boot=400, seed=1, interval="percentile", **design)
    assert 0.88 <= items <= 0.99, items
    assert cells < 0.80, cells


def test_two_way_covers_when_countries_vary_too_and_items_alone_does_not():
    design = dict(n_items=20, n_countries=20, item_sd=1.0, country_sd=1.5, cell_sd=0.5)
    both = coverage(150, "both", n_boot=400, seed=2, **design)
    items = coverage(150, "items", n_boot=400, seed=2, **design)
    assert both >= 0.85, both
    assert items < 0.80, items


def test_mean_is_cell_mean_and_nan_left_out():
    cells = pd.DataFrame({"country": ["A", "A", "B", "B"], "item": ["x", "y", "x", "y"],
                          "v": [1.0, 2.0, 3.0, np.nan]})
    out = mean_interval(cells, ["v"], unit="items", n_boot=200)
    assert out.loc["v", "mean"] == pytest.approx(2.0)
    assert out.loc["v", "lo"] <= 2.0 <= out.loc["v", "hi"]


def test_constant_within_unit_gives_zero_width_for_that_unit_only():
    # value depends on the item only: resampling countries cannot move the mean
    cells = simulated_cells(np.random.default_rng(0), 10, 6, item_sd=1.0, cell_sd=0.0)
    by_country = mean_interval(cells, ["value"], unit="countries", n_boot=300).loc["value"]
    by_item = mean_interval(cells, ["value"], unit="items", n_boot=300).loc["value"]
    assert by_country["hi"] - by_country["lo"] == pytest.approx(0.0, abs=1e-12)
    assert by_item["hi"] - by_item["lo"] > 0.2


def test_same_seed_same_interval_and_one_unit_gives_nan():
    cells = simulated_cells(np.random.default_rng(3), 8, 4)
    for unit in ("items", "countries", "both", "cells"):
        a = mean_interval(cells, ["value"], unit=unit, n_boot=200, seed=5)
        b = mean_interval(cells, ["value"], unit=unit, n_boot=200, seed=5)
        pd.testing.assert_frame_equal(a, b)
    one = mean_interval(cells[cells["country"] == 0], ["value"], unit="countries", n_boot=200)
    assert np.isnan(one.loc["value", "lo"])
    assert n_units(cells, "both") == 32 and n_units(cells, "items") == 8


def test_unknown_unit_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown bootstrap unit 'item'"):
        mean_interval(simulated_cells(np.random.default_rng(0), 3, 3), ["value"], unit="item")


def test_one_way_matches_scipy_percentile_bootstrap():
    from scipy.stats import bootstrap

    cells = simulated_cells(np.random.default_rng(4), 15, 6, item_sd=1.0, cell_sd=0.5)
    cells = cells[~((cells["item"] == 3) & (cells["country"] > 2))]  # unequal cluster sizes
    ours = mean_interval(cells, ["value"], unit="items", n_boot=4000, seed=1, interval="percentile").loc["value"]
    sums = cells.groupby("item")["value"].agg(["sum", "size"])
    ref = bootstrap((sums["sum"].to_numpy(), sums["size"].to_numpy(dtype=float)),
                    lambda s, n, axis=-1: s.sum(axis=axis) / n.sum(axis=axis), paired=True, vectorized=True,
                    n_resamples=4000, method="percentile", rng=np.random.default_rng(1)).confidence_interval
    assert ours["mean"] == pytest.approx(cells["value"].mean())
    width = ref.high - ref.low
    assert ours["lo"] == pytest.approx(ref.low, abs=0.05 * width) and ours["hi"] == pytest.approx(ref.high, abs=0.05 * width)


def test_t_interval_covers_at_eight_items_where_the_percentile_bootstrap_undercovers():
    # the demo's 8 items: the percentile bootstrap covers ~0.89 (benchmarks/bench_coverage.py), t ~0.95
    design = dict(n_items=8, n_countries=6, item_sd=1.0, cell_sd=1.0)
    t = coverage(400, "items", seed=3, interval="t", **design)
    pct = coverage(400, "items", n_boot=400, seed=3, interval="percentile", **design)
    assert 0.925 <= t <= 0.975, t
    assert pct <= t - 0.03, (pct, t)


def test_t_interval_is_scipy_t_on_cluster_means_and_ratio_se_with_unequal_clusters():
    from scipy.stats import ttest_1samp

    cells = simulated_cells(np.random.default_rng(6), 8, 5, item_sd=1.0, cell_sd=0.5)
    out = mean_interval(cells, ["value"], unit="items", interval="t").loc["value"]
    res = ttest_1samp(cells.groupby("item")["value"].mean(), 0.0)
    ci = res.confidence_interval(0.95)
    assert (out["lo"], out["hi"], out["p"]) == pytest.approx((ci.low, ci.high, res.pvalue), rel=1e-10)
    # unequal clusters: the linearised SE of the ratio; the mean stays the mean over cells
    cut = cells[~((cells["item"] == 3) & (cells["country"] > 1))]
    out = mean_interval(cut, ["value"], unit="items", interval="t").loc["value"]
    sums = cut.groupby("item")["value"].agg(["sum", "size"])
    r = sums["sum"].sum() / sums["size"].sum()
    se = np.sqrt(8 / 7 * ((sums["sum"] - r * sums["size"]) ** 2).sum()) / sums["size"].sum()
    assert out["mean"] == pytest.approx(cut["value"].mean())
    assert out["hi"] - out["mean"] == pytest.approx(se * 2.3646242510102993)  # t(7) 97.5% quantile
    with pytest.raises(ValueError, match="unknown interval rule 'bca'"):
        mean_interval(cells, ["value"], interval="bca")
