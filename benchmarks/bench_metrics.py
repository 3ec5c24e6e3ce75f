"""Timing of the evaluation at paper scale: 64 countries x 300 items x 8 methods (153,600 cells).

Random distributions over a made-up catalog of 300 items (K = 2..10, one in six nominal), so the
measurement covers exactly the code paths of real runs: score() (every per-cell metric),
summarise() (means + 1000-resample bootstrap per method x country), the divergence ratio, the
correlation of country means and the aligned/underrepresented gap. Usage::

    .venv/bin/python benchmarks/bench_metrics.py [--repeat 3]
"""
import argparse
import time

import numpy as np
import pandas as pd

from vpersona.data.catalog import Catalog, Item
from vpersona.evaluate.crosscultural import country_groups, divergence_ratio, group_gap, mean_correlation, zones
from vpersona.core.distributions import from_matrix
from vpersona.evaluate.metrics import score, summarise

N_COUNTRIES, N_ITEMS, N_METHODS = 64, 300, 8


def bench_catalog(rng) -> Catalog:
    items = {}
    for i in range(N_ITEMS):
        k = int(rng.integers(2, 11))
        scale = "nominal" if i % 6 == 5 else ("binary" if k == 2 else "ordinal")
        items[f"B{i}"] = Item(code=f"B{i}", role="target", module="bench", scale=scale, text="", label="",
                              options=tuple((c, str(c)) for c in range(1, k + 1)))
    return Catalog(items)


def random_table(catalog, countries, rng, **keys) -> pd.DataFrame:
    cells = pd.DataFrame([(c, i) for c in countries for i in catalog.items], columns=["country", "item"])
    K = cells["item"].map({c: it.n_options for c, it in catalog.items.items()}).to_numpy()
    G = rng.gamma(0.7, size=(len(cells), 10)) * (np.arange(10)[None, :] < K[:, None])
    return from_matrix(cells.assign(**keys), G / G.sum(axis=1, keepdims=True), K)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    catalog = bench_catalog(rng)
    countries = list(zones().index[:N_COUNTRIES])
    human = random_table(catalog, countries, rng)
    pred = pd.concat([random_table(catalog, countries, rng, method=f"method{m}") for m in range(N_METHODS)],
                     ignore_index=True)
    groups = country_groups(countries)
    print(f"{len(pred):,} predicted cells ({N_COUNTRIES} countries x {N_ITEMS} items x {N_METHODS} methods)")
    steps = {
        "score (jsd, w1, mean_error, diversity_ratio, entropy_ratio per cell)":
            lambda: score(pred, human, catalog=catalog),
        "summarise (mean + 1000-resample bootstrap per method x country)":
            lambda: summarise(cells, by=("method", "country"), n_boot=1000),
        "divergence_ratio (all country pairs per item and method)": lambda: divergence_ratio(pred, human),
        "mean_correlation (country means per item and method)":
            lambda: mean_correlation(pred, human, catalog=catalog),
        "group_gap (aligned vs underrepresented)": lambda: group_gap(cells, groups),
    }
    cells = score(pred, human, catalog=catalog)
    total = 0.0
    for name, step in steps.items():
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        total += min(times)
        print(f"{min(times):7.3f} s  (best of {args.repeat}; median {np.median(times):.3f} s)  {name}")
    print(f"{total:7.3f} s  total, all steps")


if __name__ == "__main__":
    main()
