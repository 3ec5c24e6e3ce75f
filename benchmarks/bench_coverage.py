"""Coverage of nominal 95% cluster intervals on simulated crossed (item x country) tables.

Each dataset is ``value = item effect + country effect + cell noise`` (population mean 0;
:func:`vpersona.evaluate.bootstrap.simulated_cells`). Two tables, every rule on the same datasets
(same run, same seeds):

1. the mean over cells (a level, or a paired difference a - b, whose table has the same shape) with
   its items interval: the library's three rules (:func:`~vpersona.evaluate.bootstrap.mean_interval`):
   ``percentile`` bootstrap (what the summary printed before), ``t`` on the item means and the
   ``studentized`` bootstrap (bootstrap-t), and one candidate computed here only: BCa
   (``scipy.stats.bootstrap(method="BCa")`` on the item means). "paired" designs are
   small differences with skewed item effects (a few items carry the difference), the hard
   case for every rule. The cell bootstrap (cells as if independent) is shown once: too narrow.
2. the gap (mean of underrepresented minus mean of aligned country means, true gap 0) with
   countries resampled within groups: the within-group ``percentile`` bootstrap (before) and
   Welch ``t`` on the country means (the library's :func:`~vpersona.evaluate.crosscultural.gap_intervals`),
   and BCa on the two groups (scipy, two independent samples). A gap *change* between two
   methods is the gap of their paired per-cell difference: the same table.

Usage::

    .venv/bin/python benchmarks/bench_coverage.py [--datasets 1000] [--boot 1000]

Output: see docs/method.md, "Intervals" (command, table and date there).
"""
import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from vpersona.core.seeds import derive_seed, rng
from vpersona.evaluate.bootstrap import mean_interval, simulated_cells
from vpersona.evaluate.crosscultural import ALIGNED, UNDERREPRESENTED, gap_intervals

LEVELS = {
    "demo: 8 items x 6 countries, item sd 1, cell sd 1": dict(n_items=8, n_countries=6),
    "12 items x 8 countries, item sd 1, cell sd 1": dict(n_items=12, n_countries=8),
    "30 items x 8 countries, item sd 1, cell sd 1": dict(n_items=30, n_countries=8),
    "paired, demo: 8 items x 6 countries, skewed item sd 0.05, cell sd 0.05":
        dict(n_items=8, n_countries=6, item_sd=0.05, cell_sd=0.05, item_dist="exponential"),
    "paired: 12 items x 8 countries, skewed item sd 0.05, cell sd 0.05":
        dict(n_items=12, n_countries=8, item_sd=0.05, cell_sd=0.05, item_dist="exponential"),
}
GAPS = {  # (aligned, underrepresented countries, country effects), 8 items; country sd 1, item sd 1, cell sd 1
    "demo: 2 aligned / 4 underrepresented": (2, 4, "normal"),
    "3 / 3": (3, 3, "normal"),
    "4 / 8": (4, 8, "normal"),
    "5 / 5": (5, 5, "normal"),
    "10 / 20": (10, 20, "normal"),
    "skewed country effects, demo 2 / 4": (2, 4, "exponential"),
    "skewed country effects, 3 / 3": (3, 3, "exponential"),
    "skewed country effects, 4 / 8": (4, 8, "exponential"),
    "skewed country effects, 5 / 5": (5, 5, "exponential"),
    "skewed country effects, 10 / 20": (10, 20, "exponential"),
}
# The gap-narrowing claim |gap a| - |gap b| (true gaps of a and b; b = a + method x country noise
# sd 0.5 + cell noise sd 0.2), Welch t by the delta method vs the within-group bootstrap.
NARROWING = {
    "narrowing, demo 2 / 4, true gaps 1 and 1": (2, 4, 1.0, 1.0),
    "narrowing, 5 / 5, true gaps 1 and 1": (5, 5, 1.0, 1.0),
    "narrowing, demo 2 / 4, true gaps 0 and 0": (2, 4, 0.0, 0.0),
    "narrowing, 5 / 5, true gaps 0 and 0": (5, 5, 0.0, 0.0),
    "narrowing, 10 / 20, true gaps 0 and 0": (10, 20, 0.0, 0.0),
}


def _bca(samples, statistic, n_boot: int, seed: int) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on degenerate BCa resamples
        ci = bootstrap(samples, statistic, n_resamples=n_boot, method="BCa", vectorized=True,
                       rng=np.random.default_rng(seed)).confidence_interval
    return ci.low, ci.high


def level_row(design: dict, n: int, n_boot: int, seed: int, cells_rule: bool) -> dict:
    gen, hits = rng(seed, "levels"), {}
    for k in range(n):
        cells = simulated_cells(gen, **design)
        s = derive_seed(seed, k)
        item_means = cells.groupby("item")["value"].mean().to_numpy()
        found = {f"items {r}": mean_interval(cells, ["value"], unit="items", n_boot=n_boot, seed=s,
                                             interval=r).loc["value", ["lo", "hi"]]
                 for r in ("percentile", "t", "studentized")}
        found["items BCa"] = _bca((item_means,), np.mean, n_boot, s)
        if cells_rule:
            found["cells percentile"] = mean_interval(cells, ["value"], unit="cells", n_boot=n_boot, seed=s,
                                                      interval="percentile").loc["value", ["lo", "hi"]]
        for name, (lo, hi) in found.items():
            hits[name] = hits.get(name, 0) + bool(lo <= 0 <= hi)
    return {name: h / n for name, h in hits.items()}


def gap_row(n_aligned: int, n_under: int, dist: str, n: int, n_boot: int, seed: int, n_items: int = 8) -> dict:
    gen, hits = rng(seed, "gaps", n_aligned, n_under, dist), {}
    countries = [f"C{j:02d}" for j in range(n_aligned + n_under)]
    groups = pd.Series([ALIGNED] * n_aligned + [UNDERREPRESENTED] * n_under, index=countries)
    under = groups.to_numpy() == UNDERREPRESENTED
    for k in range(n):
        cells = simulated_cells(gen, n_items, len(countries), country_sd=1.0, country_dist=dist)
        cells = cells.assign(method="m", country=[countries[c] for c in cells["country"]], jsd=cells["value"])
        s = derive_seed(seed, k)
        found = {f"gap {r}": gap_intervals(cells, groups, ["m"], unit="countries", n_boot=n_boot, seed=s,
                                           interval=r).iloc[0][["lo", "hi"]] for r in ("percentile", "t")}
        cm = cells.groupby("country")["value"].mean().reindex(countries).to_numpy()
        found["gap BCa"] = _bca((cm[under], cm[~under]), lambda u, a, axis=-1: u.mean(axis=axis) - a.mean(axis=axis),
                                n_boot, s)
        for name, (lo, hi) in found.items():
            hits[name] = hits.get(name, 0) + bool(lo <= 0 <= hi)
    return {name: h / n for name, h in hits.items()}


def narrowing_row(n_aligned: int, n_under: int, gap_a: float, gap_b: float, n: int, n_boot: int, seed: int,
                  n_items: int = 8) -> dict:
    gen, hits = rng(seed, "narrowing", n_aligned, n_under, gap_a, gap_b), {}
    countries = [f"C{j:02d}" for j in range(n_aligned + n_under)]
    groups = pd.Series([ALIGNED] * n_aligned + [UNDERREPRESENTED] * n_under, index=countries)
    under = groups.to_numpy() == UNDERREPRESENTED
    truth = abs(gap_a) - abs(gap_b)
    for k in range(n):
        a = simulated_cells(gen, n_items, len(countries), country_sd=1.0)
        c = a["country"].to_numpy()
        va = a["value"].to_numpy() + gap_a * under[c]
        vb = (a["value"].to_numpy() + gap_b * under[c] + gen.normal(0, 0.5, len(countries))[c]
              + gen.normal(0, 0.2, len(a)))
        names = [countries[j] for j in c]
        cells = pd.concat([pd.DataFrame({"method": "a", "country": names, "item": a["item"], "jsd": va}),
                           pd.DataFrame({"method": "b", "country": names, "item": a["item"], "jsd": vb})])
        s = derive_seed(seed, k)
        for r in ("percentile", "t"):
            g = gap_intervals(cells, groups, ["a", "b"], [("a", "b")], unit="countries", n_boot=n_boot, seed=s,
                              interval=r)
            row = g[g["what"] == "narrowing"].iloc[0]
            hits[f"narrowing {r}"] = hits.get(f"narrowing {r}", 0) + bool(row["lo"] <= truth <= row["hi"])
    return {name: h / n for name, h in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, b = args.datasets, args.boot
    print(f"coverage of nominal 95% intervals, {n} simulated datasets per row, {b} resamples each "
          f"(binomial SE at 0.95: {np.sqrt(0.95 * 0.05 / n):.3f})")
    print("1. mean over cells (level or paired difference), items interval")
    for k, (name, design) in enumerate(LEVELS.items()):
        start = time.perf_counter()
        row = level_row(design, n, b, args.seed, cells_rule=k == 0)
        print(f"  {name}\n    " + "  ".join(f"{u} {c:.3f}" for u, c in row.items())
              + f"   ({time.perf_counter() - start:.0f} s)")
    print("2. gap underrepresented - aligned (true 0), 8 items, country sd 1, countries within groups")
    for name, (n_a, n_u, dist) in GAPS.items():
        start = time.perf_counter()
        row = gap_row(n_a, n_u, dist, n, b, args.seed)
        print(f"  {name}\n    " + "  ".join(f"{u} {c:.3f}" for u, c in row.items())
              + f"   ({time.perf_counter() - start:.0f} s)")
    print("3. gap narrowing |gap a| - |gap b| (a paired change), 8 items, countries within groups")
    for name, (n_a, n_u, g_a, g_b) in NARROWING.items():
        start = time.perf_counter()
        row = narrowing_row(n_a, n_u, g_a, g_b, n, b, args.seed)
        print(f"  {name}\n    " + "  ".join(f"{u} {c:.3f}" for u, c in row.items())
              + f"   ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
