"""The SYNTHETIC sample's latent model: its constants, the real marginals it reproduces, and the item
loadings on the two IW factors and the content factors (stated assumptions)."""
from __future__ import annotations

from functools import cache
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vpersona.data.catalog import Catalog, Item, load_catalog
from vpersona.core.package_data import package_table, resource_yaml
from vpersona.data.wvs import INDEX_COMPONENTS


# The countries of the bundled sample: every IW cultural zone of vpersona/resources/countries.csv.
DEFAULT_COUNTRIES = ("AUS", "NZL", "DEU", "CZE", "GRC", "RUS", "UKR", "JPN", "KOR",
                     "ARG", "BRA", "MEX", "EGY", "IRN", "NGA", "PAK", "PHL", "THA")
DEFAULT_OUT = "vpersona/resources/wvs7_SYNTHETIC_sample.csv.gz"

# Individual-level loading = SHRINK x cross-country correlation of the item's country mean with
# the published IW position (assumption: within-country links are about half the ecological ones).
SHRINK = 0.5
# Nominal items placed on the latent axis by a split of their codes: the listed "high" codes sit
# at the high end, the others at the low end; within each end codes are assigned at random.
# Q152 aims of the country: 3 "more say", 4 "more beautiful cities" are Inglehart's
# post-materialist aims; Q289 religion: 0 "no religious denomination".
NOMINAL_AXES = {"Q152": (3, 4), "Q289": (0,)}
# Invented items (no real marginals): loadings on (F1 secular, F2 self-expression) are assumptions.
AGE_LOADINGS = (-0.2, -0.1)        # older -> more traditional, slightly more survival-oriented
RURAL_LOADINGS = (-0.1, -0.1)      # H_URBRURAL code 2 (rural) -> a little more traditional
URBAN_SHARE = 0.6                  # H_URBRURAL code 1 (urban)
AGE_RANGE = (18, 85)
AGE_SHAPE = ((18, 1.0), (60, 1.0), (85, 0.25))   # relative density, linear between knots
WEIGHT_SD = 0.3                    # W_WEIGHT ~ lognormal(0, WEIGHT_SD), rescaled to mean 1
MISSING_SHARED = 1.0               # sd of the respondent-level non-response propensity
DK, NA, NOT_ASKED, OTHER = -1, -2, -4, -5
INVENTED = ("Q262", "H_URBRURAL")
CONTENT_FACTORS_FILE = "synthetic_factors.yaml"
MAX_COMMUNALITY = 0.95             # sum of squared loadings of an item must stay below this
_COMPONENTS = {part: index for index, parts in (("Y003", INDEX_COMPONENTS["autonomy"]),
                                                 ("Y002", INDEX_COMPONENTS["postmaterialism"]))
               for part in parts}


@dataclass(frozen=True)
class Marginal:
    """Real marginal of one item in one country: shares over the catalog codes and missing counts."""

    shares: np.ndarray
    n_total: int
    n_valid: int
    n_dk: int
    n_na: int

    @property
    def n_other(self) -> int:
        return self.n_total - self.n_valid - self.n_dk - self.n_na

    def counts(self, n: int) -> dict[int, int]:
        """Respondents per kind (0 valid, -1, -2, -5) out of ``n``, by largest-remainder rounding."""
        kinds = (0, DK, NA, OTHER)
        raw = np.array([self.n_valid, self.n_dk, self.n_na, self.n_other], float) * n / self.n_total
        out = np.floor(raw).astype(int)
        out[np.argsort(-(raw - out), kind="stable")[: n - out.sum()]] += 1
        return dict(zip(kinds, out.tolist()))


# --------------------------------------------------------------------------- package data

def _marginals_table() -> pd.DataFrame:
    return package_table("wvs7_marginals.csv.gz")


def available_countries() -> list[str]:
    """Countries the generator can produce (those with real marginals)."""
    return sorted(_marginals_table()["country"].unique())


def real_marginals(country: str, catalog: Catalog | None = None) -> dict[str, Marginal]:
    """The real marginals of ``country`` per catalog item that has any (items not asked are absent).

    Shares are renormalised over the catalog's answer options; answers with other codes (Q254
    code 5, "I am not [nationality]") are counted with the other missing answers (-5).
    """
    catalog = catalog if catalog is not None else load_catalog()
    table = _marginals_table()
    out = {}
    for code, rows in table[table["country"] == country].groupby("item", sort=False):
        if code not in catalog:
            continue
        item = catalog[code]
        first = rows.iloc[0]
        # codes that are not answer options (Q254 code 5 "I am not [nationality]") count as missing (-5)
        n_valid = int(first["n_valid"]) - int(rows.loc[~rows["code"].isin(item.codes), "n_code"].sum())
        if n_valid <= 0 or int(first["n_notasked"]) == int(first["n_total"]):
            continue
        shares = rows.set_index("code")["share_w"].reindex(item.codes, fill_value=0.0).to_numpy(float)
        out[code] = Marginal(shares / shares.sum(), int(first["n_total"]) - int(first["n_notasked"]),
                             n_valid, int(first["n_dk"]), int(first["n_na"]))
    return out


# --------------------------------------------------------------------------- loadings

def _axis_position(item: Item, shares: np.ndarray) -> float:
    """Where a country's answer distribution of ``item`` sits on the item's latent axis."""
    if item.code in NOMINAL_AXES:
        return float(shares[np.isin(item.codes, NOMINAL_AXES[item.code])].sum())
    return float(np.arange(len(shares)) @ shares)


def _on_axis(item: Item) -> bool:
    return item.scale in ("ordinal", "binary") or item.code in NOMINAL_AXES


@cache
def _loadings_cached(catalog: Catalog) -> pd.DataFrame:
    positions = package_table("iw_map_positions.csv").set_index("iso3")
    marginals = _marginals_table()
    rows = []
    for item in catalog:
        if item.code in INVENTED:
            load = AGE_LOADINGS if item.code == "Q262" else RURAL_LOADINGS
            rows.append((item.code, "assumed", np.nan, np.nan, np.nan, np.nan, *load, 0))
            continue
        sub = marginals[(marginals["item"] == item.code) & marginals["country"].isin(positions.index)]
        if sub.empty:
            continue
        if not _on_axis(item):
            if item.code in _COMPONENTS:
                rows.append((item.code, f"drawn jointly with {_COMPONENTS[item.code]}, loads through it",
                             *[np.nan] * 6, 0))
            else:
                rows.append((item.code, "none (nominal, independent of F1 and F2)", *[np.nan] * 4, 0.0, 0.0, 0))
            continue
        pos = {c: _axis_position(item, g.set_index("code")["share_w"].reindex(item.codes, fill_value=0)
                                 .to_numpy(float)) for c, g in sub.groupby("country")}
        x = pd.Series(pos)
        dims = positions.loc[x.index, ["traditional_secular", "survival_selfexpression"]].to_numpy(float)
        r = np.array([np.corrcoef(x, dims[:, j])[0, 1] for j in range(2)])
        # the published dimensions correlate across countries; within a country F1 and F2 are
        # independent, so the loadings are the pattern coefficients Phi^-1 r, not the correlations r
        beta = np.linalg.solve(np.corrcoef(dims, rowvar=False), r)
        axis = "share of codes " + ",".join(map(str, NOMINAL_AXES[item.code])) \
            if item.code in NOMINAL_AXES else "mean code"
        if item.code in _COMPONENTS:
            axis += f" (drawn jointly with {_COMPONENTS[item.code]}, loads through it)"
            rows.append((item.code, axis, *r, *beta, np.nan, np.nan, len(x)))
        else:
            rows.append((item.code, axis, *r, *beta, *(SHRINK * beta), len(x)))
    table = pd.DataFrame(rows, columns=["item", "axis", "r_trad", "r_surv", "beta_trad", "beta_surv",
                                        "load_trad", "load_surv", "n_countries"]).set_index("item")
    return table


def item_loadings(catalog: Catalog | None = None) -> pd.DataFrame:
    """Per item: ecological correlations with the published IW positions and the latent loadings.

    Columns ``axis`` (the country-level position of the item that is correlated), ``r_trad``/
    ``r_surv`` (Pearson correlation across countries of that position with the published
    ``traditional_secular``/``survival_selfexpression``), ``beta_trad``/``beta_surv`` (pattern
    coefficients Phi^-1 r, Phi = the 2x2 correlation of the two published dimensions over the same
    countries), ``load_trad``/``load_surv`` (= ``SHRINK`` x beta; the stated assumption for the
    invented items; NaN for components, which are drawn jointly with their index Y002/Y003 and
    load through it; 0 for nominal items without an axis), ``n_countries``.
    """
    return _loadings_cached(catalog if catalog is not None else load_catalog()).copy()


@cache
def _content_cached(catalog: Catalog) -> pd.DataFrame:
    spec = resource_yaml(CONTENT_FACTORS_FILE)
    iw = _loadings_cached(catalog)
    loads: dict[tuple[str, str], float] = {}
    for factor, body in spec["factors"].items():
        for code, value in body["loadings"].items():
            if code not in catalog or code in _COMPONENTS or code in INVENTED or not _on_axis(catalog[code]):
                raise ValueError(f"{CONTENT_FACTORS_FILE}: factor {factor!r} lists {code!r}, expected an "
                                 f"ordinal/binary catalog item, an index, or one of {sorted(NOMINAL_AXES)}")
            loads[(code, factor)] = float(value)
    proxy = float(spec["proxy_loading"])
    for item in catalog:
        for value_code in item.proxies:
            r_value = iw.loc[value_code, ["r_trad", "r_surv"]].to_numpy(float)
            r_proxy = iw.loc[item.code, ["r_trad", "r_surv"]].to_numpy(float)
            sign = np.sign(r_value @ r_proxy)
            if not np.isfinite(sign) or sign == 0:
                raise ValueError(f"cannot derive the sign of the proxy link {item.code}-{value_code}: "
                                 f"expected both items to have ecological IW correlations")
            loads[(value_code, f"proxy:{value_code}")] = proxy
            loads[(item.code, f"proxy:{value_code}")] = float(sign) * proxy
    table = pd.Series(loads).unstack(fill_value=0.0)
    factors = list(spec["factors"]) + sorted(f for f in table.columns if f.startswith("proxy:"))
    table = table[factors].reindex([i.code for i in catalog if i.code in table.index])
    iw_part = iw.loc[table.index, ["load_trad", "load_surv"]].fillna(0.0).to_numpy(float)
    communality = (iw_part ** 2).sum(axis=1) + (table.to_numpy() ** 2).sum(axis=1)
    if (communality >= MAX_COMMUNALITY).any():
        bad = table.index[communality >= MAX_COMMUNALITY].tolist()
        raise ValueError(f"{CONTENT_FACTORS_FILE}: the squared loadings of {bad} sum to "
                         f">= {MAX_COMMUNALITY} with their IW loadings; expected less (unique variance)")
    return table


def content_loadings(catalog: Catalog | None = None) -> pd.DataFrame:
    """Loadings of items on the content factors (one column per factor, 0 where an item does not load).

    Module and cluster factors come from ``vpersona/resources/synthetic_factors.yaml`` (stated
    assumptions); then one ``proxy:<value item>`` column per value item with declared proxies,
    loading ``proxy_loading`` on the value item and +-``proxy_loading`` on each proxy, the sign
    being that of the dot product of the two items' ecological IW correlations (``r_trad``,
    ``r_surv`` of :func:`item_loadings`). Items without content factors are absent.
    """
    return _content_cached(catalog if catalog is not None else load_catalog()).copy()
