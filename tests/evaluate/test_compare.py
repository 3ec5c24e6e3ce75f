"""Paired comparisons on constructed cell tables where the answer is known."""
import numpy as np
import pandas as pd
import pytest

from vpersona.evaluate.compare import paired_cells, paired_difference, paired_table, verdict, with_diversity_gap


def cells_of(values: dict) -> pd.DataFrame:
    """values: method -> (countries x items) array of jsd."""
    rows = []
    for method, V in values.items():
        for c, row in enumerate(np.asarray(V, dtype=float)):
            for i, v in enumerate(row):
                rows.append({"method": method, "country": f"C{c}", "item": f"Q{i}", "K": 4, "jsd": v,
                             "diversity_ratio": 1 + v})
    return pd.DataFrame(rows)


def test_constant_shift_has_exact_mean_and_zero_width():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, (5, 7))
    cells = cells_of({"a": base + 0.1, "b": base})
    for unit in ("items", "countries", "both"):
        r = paired_difference(cells, "a", "b", unit=unit, n_boot=300)
        assert r["mean"] == pytest.approx(0.1) and r["lo"] == pytest.approx(0.1) and r["hi"] == pytest.approx(0.1)
        assert (r["wins"], r["n_countries"], r["n_cells"], r["unit"]) == (0, 5, 35, unit)
    assert paired_difference(cells, "a", "b", unit="items")["n_units"] == 7


def test_wins_count_countries_where_a_is_lower():
    base = np.full((5, 4), 0.5)
    a = base.copy()
    a[:3] -= 0.1   # a better in 3 countries
    a[3:4] += 0.05  # worse in 1
    # and tied in the last: not a win
    r = paired_difference(cells_of({"a": a, "b": base}), "a", "b", n_boot=200)
    assert r["wins"] == 3 and r["n_countries"] == 5
    assert r["mean"] == pytest.approx((3 * -0.1 + 0.05) / 5)


def test_item_interval_wider_than_cell_interval_when_items_differ():
    rng = np.random.default_rng(1)
    item_effect = rng.normal(0, 0.1, 12)
    b = rng.uniform(0.3, 0.5, (8, 12))
    a = b + 0.02 + item_effect[None, :] + rng.normal(0, 0.01, (8, 12))
    cells = cells_of({"a": a, "b": b})
    items = paired_difference(cells, "a", "b", unit="items", n_boot=500)
    naive = paired_difference(cells, "a", "b", unit="cells", n_boot=500)
    assert (items["hi"] - items["lo"]) > 2 * (naive["hi"] - naive["lo"])


def test_only_shared_cells_are_compared():
    cells = cells_of({"a": np.full((2, 3), 0.2), "b": np.full((2, 3), 0.5)})
    cells = cells[~((cells["method"] == "b") & (cells["item"] == "Q0"))]
    cells.loc[(cells["method"] == "a") & (cells["item"] == "Q1") & (cells["country"] == "C0"), "jsd"] = np.nan
    d = paired_cells(cells, "a", "b")
    assert len(d) == 3 and set(d["item"]) == {"Q1", "Q2"}
    assert paired_difference(cells, "a", "b", n_boot=100)["n_cells"] == 3


def test_table_skips_absent_pairs_and_diversity_gap_is_distance_from_one():
    cells = with_diversity_gap(cells_of({"a": np.full((2, 3), 0.2), "b": np.full((2, 3), 0.5)}))
    t = paired_table(cells, [("a", "b"), ("a", "zzz")], n_boot=100)
    assert list(t["b"]) == ["b"]
    assert cells["diversity_gap"].iloc[0] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="method 'zzz' is not in the cell table"):
        paired_table(cells, [("a", "zzz")], skip_missing=False)


def test_duplicated_cells_are_refused():
    cells = cells_of({"a": np.full((2, 2), 0.2), "b": np.full((2, 2), 0.5)})
    with pytest.raises(ValueError, match="several rows per"):
        paired_difference(pd.concat([cells, cells]), "a", "b")


@pytest.mark.parametrize("lo,hi,expected", [(-0.2, -0.01, "yes"), (0.01, 0.2, "no"), (-0.1, 0.1, "not shown"), (-0.1, 0.003, "not shown"), (-0.003, 0.1, "not shown"),
                                            (np.nan, np.nan, "not shown")])
def test_verdict_never_stronger_than_interval(lo, hi, expected):
    assert verdict(lo, hi) == expected
    flipped = {"yes": "no", "no": "yes", "not shown": "not shown"}[expected]
    assert verdict(-hi, -lo, lower_is_claim=False) == (expected if not np.isnan(lo) else "not shown")
    assert verdict(lo, hi, lower_is_claim=False) == flipped
