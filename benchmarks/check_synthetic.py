"""Measure the bundled SYNTHETIC sample: marginal fit, IW dimensions, generation time, file size.

    python benchmarks/check_synthetic.py            # the bundled sample (regenerated in memory too)
    python benchmarks/check_synthetic.py --all      # also every one of the 56 countries at n=1000

Prints Markdown tables: per-country Jensen-Shannon distance (base 2) between the sample's
W_WEIGHT-weighted marginals and the real WVS-7 marginals (max / median over items), the derived
indices Y002/Y003, how informative value items are about targets (within-country Spearman
correlations), and the IW dimension country means next to the published map positions.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from vpersona.data.catalog import load_catalog
from vpersona.data.dimensions import DIMENSIONS, compare_with_published, country_means, fit_iw_dimensions
from vpersona.core.distributions import to_matrix
from vpersona.evaluate.metrics import jsd
from vpersona.data.synthetic import DEFAULT_COUNTRIES, INVENTED, available_countries, generate_sample, write_sample
from vpersona.data.targets import human_distributions, marginal_distributions
from vpersona.data.wvs import load_bundled_sample, load_wvs

BUNDLED = Path(__file__).resolve().parent.parent / "vpersona" / "data" / "wvs7_SYNTHETIC_sample.csv.gz"
COMPONENTS = ["Q8", "Q14", "Q15", "Q17", "Q154", "Q155"]
INDICES = ["Y002", "Y003"]
# (value or target item, target item, kind): "proxy" = a declared leakage proxy pair of the catalog
PAIRS = [("Q164", "Q6", "proxy"), ("Q164", "Q165", "proxy"), ("Q164", "Q171", "same module"),
         ("Q182", "Q36", "proxy"), ("Q182", "Q22", "proxy"), ("Q184", "Q186", "same module"),
         ("Q185", "Q186", "same module"), ("Q180", "Q181", "same module"), ("Q182", "Q180", "same module"),
         ("Q46", "Q49", "proxy"), ("Q49", "Q50", "same module"), ("Q57", "Q59", "proxy"),
         ("Q69", "Q71", "same module"), ("Q209", "Q210", "proxy"), ("Q29", "Q30", "same module"),
         ("Y002", "Q152", "same module"), ("Q164", "Q182", "other module"), ("Q164", "Q57", "other module"),
         ("Q57", "Q29", "other module")]


def jsd_table(survey) -> pd.DataFrame:
    """One row per (country, item): JSD of the sample's weighted marginal to the real one."""
    catalog = load_catalog()
    items = [i.code for i in catalog if i.n_options >= 2 and i.code in survey.items and i.code not in INVENTED]
    real = marginal_distributions(survey.countries, items).set_index(["country", "item"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = human_distributions(survey, items).set_index(["country", "item"])
    keys = real.index.intersection(mine.index)
    missing = real.index.difference(mine.index)
    if len(missing):
        raise SystemExit(f"cells with real marginals but no synthetic answers: {list(missing)[:5]}")
    P, _ = to_matrix(mine.loc[keys])
    Q, _ = to_matrix(real.loc[keys])
    return pd.DataFrame({"jsd": jsd(P, Q)}, index=keys).reset_index()


def per_country(cells: pd.DataFrame) -> pd.DataFrame:
    out = []
    for country, g in cells.groupby("country"):
        plain = g[~g["item"].isin(INDICES)]
        worst = plain.loc[plain["jsd"].idxmax()]
        idx = g.set_index("item")["jsd"]
        out.append({"country": country, "items": len(plain), "max": worst["jsd"], "max item": worst["item"],
                    "median": plain["jsd"].median(),
                    "components max": plain[plain["item"].isin(COMPONENTS)]["jsd"].max(),
                    "Y002": idx.get("Y002", np.nan), "Y003": idx.get("Y003", np.nan)})
    return pd.DataFrame(out)


def informativeness(survey) -> pd.DataFrame:
    """Within-country Spearman correlation of value/target pairs, median over countries."""
    rows = []
    for a, b, kind in PAIRS:
        rs = []
        for _, g in survey.responses.groupby("country"):
            pair = g[[a, b]].dropna()
            if len(pair) > 50 and pair[a].nunique() > 1 and pair[b].nunique() > 1:
                rs.append(pair[a].corr(pair[b], method="spearman"))
        rows.append({"pair": f"{a}-{b}", "kind": kind, "median rho": np.median(rs), "min": np.min(rs),
                     "max": np.max(rs), "countries": len(rs)})
    return pd.DataFrame(rows)


def md(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.to_markdown(index=False, floatfmt=f".{digits}f") if _has_tabulate() else \
        frame.round(digits).to_string(index=False)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="also generate and check all 56 countries")
    args = ap.parse_args(argv)

    start = time.perf_counter()
    frame = generate_sample(list(DEFAULT_COUNTRIES), 1000, 2026)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = write_sample(frame, Path(tmp) / "again.csv.gz")
        same = path.read_bytes() == BUNDLED.read_bytes()
    print(f"## Bundled sample\n\n{BUNDLED.name}: {BUNDLED.stat().st_size / 1e6:.2f} MB, {len(frame)} rows x "
          f"{frame.shape[1]} columns, sha256 {hashlib.sha256(BUNDLED.read_bytes()).hexdigest()[:16]}...; "
          f"generation of the 18 countries in memory {seconds:.1f} s; regenerated bytes identical to the "
          f"bundled file: {same}\n")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        survey = load_bundled_sample()
    cells = jsd_table(survey)
    print("## JSD (base 2) of weighted marginals, bundled sample vs real WVS-7 marginals\n")
    print(md(per_country(cells)))
    plain = cells[~cells["item"].isin(INDICES)]
    print(f"\nAll {len(plain)} (country, item) cells: max {plain['jsd'].max():.4f}, median "
          f"{plain['jsd'].median():.4f}, share <= 0.02: {(plain['jsd'] <= 0.02).mean():.3f}. "
          f"Y002/Y003 (computed from components, informative): max {cells[cells['item'].isin(INDICES)]['jsd'].max():.4f}\n")

    print("## Value items vs targets: within-country Spearman correlation (median over countries)\n")
    print(md(informativeness(survey), 3))

    for rotation in ("target", "varimax"):
        model = fit_iw_dimensions(survey, rotation=rotation)
        table, corr = compare_with_published(country_means(survey, model))
        print(f"\n## IW dimensions ({rotation} rotation): country means vs published positions\n")
        print(f"Fit on {model.n_fit} complete cases; two components explain {model.explained:.1%} of the "
              f"variance. Loadings:\n")
        print(md(model.loadings.reset_index(), 2))
        print()
        print(md(table[["country", *DIMENSIONS, *(f"published_{d}" for d in DIMENSIONS)]], 2))
        print(f"\nPearson r over {corr['n']} countries: trad_secular {corr['trad_secular']:.3f}, "
              f"surv_selfexp {corr['surv_selfexp']:.3f}")

    if args.all:
        countries = available_countries()
        start = time.perf_counter()
        everything = generate_sample(countries, 1000, 2026)
        seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            path = write_sample(everything, Path(tmp) / "all.csv.gz")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cells_all = jsd_table(load_wvs(path, not_asked="exclude"))
        plain = cells_all[~cells_all["item"].isin(INDICES)]
        summary = per_country(cells_all)
        print(f"\n## All {len(countries)} countries at n=1000 (seed 2026, {seconds:.1f} s)\n")
        print(f"Cells: {len(plain)}; max JSD {plain['jsd'].max():.4f} "
              f"({plain.loc[plain['jsd'].idxmax(), 'country']}/{plain.loc[plain['jsd'].idxmax(), 'item']}); "
              f"median {plain['jsd'].median():.4f}; cells > 0.02: {int((plain['jsd'] > 0.02).sum())}; "
              f"components max {summary['components max'].max():.4f}; Y002 max {summary['Y002'].max():.4f}, "
              f"median {summary['Y002'].median():.4f}; Y003 max {summary['Y003'].max():.4f}, "
              f"median {summary['Y003'].median():.4f}\n")
        print(md(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
