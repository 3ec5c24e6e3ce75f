"""Generate a SYNTHETIC respondent-level sample in the WVS Wave 7 layout.

The rows are NOT real respondents. They are drawn from a documented latent model (a Gaussian
copula on the two Inglehart-Welzel factors plus content factors) so that

* per country, every item's W_WEIGHT-weighted answer shares reproduce the real WVS-7 weighted
  marginals in ``vpersona/resources/wvs7_marginals.csv.gz``, and don't know / no answer / not asked
  codes appear at the real rates;
* within a country, answers are linked through two latent factors, F1 traditional ->
  secular-rational and F2 survival -> self-expression, with item loadings derived from how each
  item's country mean correlates with the published IW map positions across countries, shrunk by
  ``SHRINK`` because individual-level links are weaker than ecological ones;
* items of the same content (religion, justifiability, trust, gender roles, ...) also share
  content factors, and every declared leakage proxy pair (catalog ``proxies``) shares one more
  factor, with loadings that are stated assumptions in ``vpersona/resources/synthetic_factors.yaml``
  (aimed at typical published within-country correlations, not estimated from respondents);
* the components of the two IW indices (Q154/Q155 -> Y002, Q8/Q14/Q15/Q17 -> Y003) are drawn
  jointly, so the indices are computed from them and stay consistent.

Age (Q262) and urban/rural (H_URBRURAL) have no real marginals: they are invented from fixed
assumptions (``AGE_SHAPE``, ``URBAN_SHARE``). The full model is in
``vpersona/resources/SYNTHETIC_SAMPLE.md``. Regenerate the bundled file with::

    python -m vpersona.data.synthetic --n 1000 --seed 2026 --out vpersona/resources/wvs7_SYNTHETIC_sample.csv.gz
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vpersona.data.catalog import Catalog, load_catalog
from vpersona.data.synthetic.country import _code_number, _Country
from vpersona.data.synthetic.model import (DEFAULT_COUNTRIES, DEFAULT_OUT, INVENTED,
                                           _marginals_table, available_countries, content_loadings,
                                           item_loadings, real_marginals)

__all__ = ["DEFAULT_COUNTRIES", "DEFAULT_OUT", "INVENTED", "available_countries", "content_loadings", "generate_sample",
           "item_loadings", "main", "real_marginals", "sample_columns", "write_sample"]

# --------------------------------------------------------------------------- public API

def sample_columns(catalog: Catalog | None = None) -> list[str]:
    """Item columns of a generated sample, in catalog order: items with real marginals somewhere,
    the components and indices, and the two invented items (age Q262, urban/rural H_URBRURAL)."""
    catalog = catalog if catalog is not None else load_catalog()
    have = set(_marginals_table()["item"])
    return [i.code for i in catalog if i.code in have or i.code in INVENTED]


def generate_sample(countries, n_per_country: int = 1000, seed: int = 0, *,
                    catalog: Catalog | None = None) -> pd.DataFrame:
    """SYNTHETIC respondents in the official WVS-7 CSV layout, ``n_per_country`` per country.

    Columns: B_COUNTRY_ALPHA, D_INTERVIEW (unique ids), W_WEIGHT (mean 1 per country), S018
    (W_WEIGHT scaled to sum to 1000 per country), then one integer column per item of
    :func:`sample_columns` (valid answer code or WVS missing code -1, -2, -4 not asked, -5).
    The same (countries, n, seed) give identical rows; a country's rows do not depend on which
    other countries are generated.
    """
    catalog = catalog if catalog is not None else load_catalog()
    countries = [countries] if isinstance(countries, str) else list(countries)
    valid = available_countries()
    unknown = [c for c in countries if c not in valid]
    if unknown or not countries:
        raise ValueError(f"cannot generate countries {unknown or countries}: expected ISO alpha-3 codes "
                         f"of countries with real WVS-7 marginals: {', '.join(valid)}")
    repeated = sorted({c for c in countries if countries.count(c) > 1})
    if repeated:
        raise ValueError(f"countries listed more than once: {repeated}")
    if not isinstance(n_per_country, (int, np.integer)) or not 1 <= n_per_country < 10**6:
        raise ValueError(f"n_per_country must be an integer in 1..999999, got {n_per_country!r}")
    columns = sample_columns(catalog)
    frames = [_Country(c, int(n_per_country), int(seed), catalog).frame(columns, _code_number(c) * 10**6)
              for c in countries]
    return pd.concat(frames, ignore_index=True)


def write_sample(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as a gzip CSV whose bytes depend only on its content (gzip mtime 0)."""
    path = Path(path)
    text = frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vpersona.data.synthetic",
                                 description="Generate a SYNTHETIC WVS-7-format sample (not real respondents).")
    ap.add_argument("--countries", nargs="+", default=list(DEFAULT_COUNTRIES),
                    help="ISO alpha-3 codes (default: the bundled sample's 18 countries)")
    ap.add_argument("--n", type=int, default=1000, help="respondents per country")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output .csv.gz path")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    frame = generate_sample(args.countries, args.n, args.seed)
    path = write_sample(frame, args.out)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    print(f"SYNTHETIC sample: {len(frame)} rows, {frame['B_COUNTRY_ALPHA'].nunique()} countries, "
          f"{frame.shape[1]} columns -> {path} ({path.stat().st_size / 1e6:.2f} MB, sha256 {digest}..., "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
