"""Reference rows (uniform, global, human-25/100/400, regression) per country on a respondent file.

Default: the bundled SYNTHETIC sample, all its countries and every catalog target item. Human
targets are the sample's own weighted distributions (human-N, the sampling error of N answers,
is by definition a sample of a country against that same country). Prints a markdown table of mean JSD per method x
country, then the mean of every metric per method, with timings. Usage::

    .venv/bin/python benchmarks/reference_table.py [--wvs PATH] [--countries AUS NGA ...] [--folds country|zone] [--max-train N]
"""
import argparse
import time
import warnings

import pandas as pd

from vpersona.data.catalog import load_catalog
from vpersona.evaluate.metrics import METRICS, score, summarise
from vpersona.evaluate.references import HUMAN_N, average_draws, reference_distributions
from vpersona.data.targets import human_distributions
from vpersona.data.wvs import load_bundled_sample, load_wvs

ORDER = ["uniform", "global", *[f"human-{n}" for n in HUMAN_N], "regression"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wvs", help="official WVS-7 file (default: the bundled SYNTHETIC sample)")
    parser.add_argument("--countries", nargs="*")
    parser.add_argument("--folds", default="country", choices=["country", "zone"])
    parser.add_argument("--max-train", type=int, default=None,
                        help="regression: at most this many training respondents per country")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not-asked notices of the loader
        survey = load_wvs(args.wvs, args.countries) if args.wvs else load_bundled_sample(args.countries)
    targets = load_catalog().codes("target")
    t0 = time.perf_counter()
    human = human_distributions(survey, targets)
    t1 = time.perf_counter()
    refs = reference_distributions(survey, human, targets, n_draws=args.draws, seed=args.seed, folds=args.folds,
                                   max_train_per_country=args.max_train)
    t2 = time.perf_counter()
    cells = average_draws(score(refs, human))
    summary = summarise(cells, by=("method", "country"), n_boot=1000, seed=args.seed)
    t3 = time.perf_counter()
    print(f"# Reference rows on {survey.label}: {len(survey.countries)} countries x {len(targets)} target items, "
          f"{len(survey.responses):,} respondents; regression folds={args.folds}, max train/country="
          f"{args.max_train}, human-N draws={args.draws}, "
          f"seed={args.seed}\n")
    table = summary.pivot(index="country", columns="method", values="jsd")[ORDER]
    table.loc["mean"] = table.mean()
    print("Mean Jensen-Shannon distance over items (lower is better):\n")
    print(table.round(3).to_markdown())
    overall = cells.groupby("method")[list(METRICS)].mean().loc[ORDER]
    print("\nEvery metric, mean over all (country, item) cells:\n")
    print(overall.round(3).to_markdown())
    print(f"\ntimings: human targets {t1 - t0:.1f} s, reference distributions {t2 - t1:.1f} s, "
          f"scoring + bootstrap {t3 - t2:.1f} s")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
