"""The two Inglehart-Welzel (IW) cultural dimensions as respondent scores, the WVS way.

Ten items define the dimensions; each is recoded so that a higher answer is more secular-rational
or more self-expressive (``REVERSED`` lists the items whose codes run the other way):

* traditional -> secular-rational: Q164 importance of God (reversed), Y003 autonomy index, Q184
  abortion justifiable, Q254 national pride (1 very proud .. 4 not at all), Q45 greater respect for
  authority (1 good .. 3 bad);
* survival -> self-expression: Q46 happiness (reversed), Y002 post-materialism, Q182
  homosexuality justifiable, Q209 signing a petition (reversed), Q57 most people can be trusted
  (reversed).

:func:`fit_iw_dimensions` standardises the items on the pooled data (countries equally weighted
by default, W_WEIGHT within a country), takes the first two principal components of their
correlation matrix, rotates them toward the IW assignment of items to dimensions (orthogonal
Procrustes; varimax, the classic WVS choice, is an option, see :func:`fit_iw_dimensions`) and
keeps regression factor-score coefficients.
The component that loads on the first five items is ``trad_secular``, the other ``surv_selfexp``;
signs are set so that positive means secular-rational / self-expression. The fit uses the
respondents who answered all ten items (complete cases); scores are pooled-standardised (mean 0,
standard deviation 1 over the fit data with its weights).

:meth:`IWModel.scores` scores every respondent with at least one of the ten items answered: a
missing item is replaced by the (weighted) mean of that item among the respondent's own country
(mean imputation within country), or by the pooled mean when nobody in the country answered it
(e.g. an item not asked there). Respondents with none of the ten items get NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import orthogonal_procrustes

from vpersona.data.catalog import load_catalog
from vpersona.core.package_data import package_table
from vpersona.data.survey import Survey

DIMENSIONS = ("trad_secular", "surv_selfexp")
IW_ITEMS = {"trad_secular": ("Q164", "Y003", "Q184", "Q254", "Q45"),
            "surv_selfexp": ("Q46", "Y002", "Q182", "Q209", "Q57")}
ITEMS = IW_ITEMS["trad_secular"] + IW_ITEMS["surv_selfexp"]
REVERSED = ("Q164", "Q46", "Q209", "Q57")
WEIGHTINGS = ("equal_country", "weight", "none")
ROTATIONS = ("varimax", "target")
_IW_TARGET = np.repeat(np.eye(2), 5, axis=0)   # items x dimensions: the IW assignment
PUBLISHED_COLUMNS = {"trad_secular": "traditional_secular", "surv_selfexp": "survival_selfexpression"}


def varimax(loadings: np.ndarray, *, normalize: bool = True, max_iter: int = 1000,
            tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Varimax rotation (Kaiser 1958). Returns ``(rotated loadings, rotation matrix)`` with
    ``rotated = loadings @ rotation``; ``normalize`` applies Kaiser row normalisation.

    Written here because scipy has no varimax and scikit-learn's (inside FactorAnalysis) is private."""
    L = np.asarray(loadings, dtype=float)
    h = np.sqrt((L ** 2).sum(axis=1)) if normalize else np.ones(L.shape[0])
    h = np.where(h > 0, h, 1.0)
    A = L / h[:, None]
    p, k = A.shape
    R = np.eye(k)
    criterion = 0.0
    for _ in range(max_iter):
        B = A @ R
        u, s, vt = np.linalg.svd(A.T @ (B ** 3 - B @ np.diag((B ** 2).sum(axis=0)) / p))
        R = u @ vt
        if s.sum() < criterion * (1 + tol):
            break
        criterion = s.sum()
    return (A @ R) * h[:, None], R


def target_rotation(loadings: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal Procrustes rotation of ``loadings`` toward ``target`` (Schoenemann 1966).
    Returns ``(rotated loadings, rotation matrix)`` with ``rotated = loadings @ rotation``."""
    rotation, _ = orthogonal_procrustes(np.asarray(loadings, float), np.asarray(target, float))
    return loadings @ rotation, rotation


@dataclass
class IWModel:
    """A fitted IW dimension model: ``scores = ((recoded items - means) / sds) @ coefficients``."""

    items: tuple[str, ...]
    means: pd.Series                # pooled weighted means of the recoded items
    sds: pd.Series                  # pooled weighted standard deviations
    loadings: pd.DataFrame          # rotated loadings, items x (trad_secular, surv_selfexp)
    coefficients: pd.DataFrame      # regression factor-score coefficients, same shape
    rotation: np.ndarray            # varimax rotation of the two unrotated components
    eigenvalues: np.ndarray         # all eigenvalues of the item correlation matrix
    n_fit: int                      # complete-case respondents used to fit
    weights: str                    # how respondents were weighted in the fit
    method: str = "target"          # the rotation used

    @property
    def explained(self) -> float:
        """Share of the items' variance the two components explain."""
        return float(self.eigenvalues[:2].sum() / self.eigenvalues.sum())

    def scores(self, survey: Survey) -> pd.DataFrame:
        """``trad_secular`` and ``surv_selfexp`` per respondent, indexed like ``survey.responses``."""
        X = _recoded(survey, self.items)
        none = X.isna().all(axis=1)
        weight = survey.responses["weight"]
        country = survey.responses["country"]
        filled = X.copy()
        for c, rows in X.groupby(country).groups.items():
            block = X.loc[rows]
            w = weight.loc[rows].to_numpy()
            for item in self.items:
                col = block[item].to_numpy()
                ok = ~np.isnan(col)
                fill = np.average(col[ok], weights=w[ok]) if ok.any() else self.means[item]
                filled.loc[rows, item] = np.where(ok, col, fill)
        Z = (filled[list(self.items)] - self.means) / self.sds
        out = pd.DataFrame(Z.to_numpy() @ self.coefficients.to_numpy(), index=survey.responses.index,
                           columns=list(DIMENSIONS))
        out[none.to_numpy()] = np.nan
        return out


def fit_iw_dimensions(survey: Survey, *, weights: str = "equal_country",
                      rotation: str = "target") -> IWModel:
    """Fit the IW dimensions on ``survey`` (PCA on the ten items, two components, rotation).

    ``weights``: ``"equal_country"`` (W_WEIGHT rescaled so every country weighs the same, the
    WVS convention for pooled analyses), ``"weight"`` (W_WEIGHT as is) or ``"none"``.
    ``rotation``: ``"target"`` (default: orthogonal Procrustes rotation of the two components
    toward the IW assignment of items to dimensions, first five items on ``trad_secular``, last
    five on ``surv_selfexp``) or ``"varimax"`` (the classic WVS rotation). Both rotate the same
    two-component PCA solution; they agree when the data have the IW simple structure. Varimax
    is not the default because on the bundled SYNTHETIC sample it mixes the two item sets (e.g.
    happiness loads on its first component), which would mislabel respondents.
    """
    if weights not in WEIGHTINGS:
        raise ValueError(f"weights={weights!r}; expected one of {WEIGHTINGS}")
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation={rotation!r}; expected one of {ROTATIONS}")
    X = _recoded(survey, ITEMS)
    complete = X.notna().all(axis=1).to_numpy()
    if complete.sum() < 2 * len(ITEMS):
        raise ValueError(f"only {int(complete.sum())} respondents of {survey.label} answered all ten IW "
                         f"items {list(ITEMS)}; need at least {2 * len(ITEMS)} to fit the dimensions")
    w = _fit_weights(survey, weights)[complete]
    data = X.to_numpy()[complete]
    means = np.average(data, axis=0, weights=w)
    sds = np.sqrt(np.average((data - means) ** 2, axis=0, weights=w))
    flat = [ITEMS[j] for j in np.flatnonzero(sds == 0)]
    if flat:
        raise ValueError(f"IW items without variance in {survey.label}: {flat}")
    Z = (data - means) / sds
    R = (Z * w[:, None]).T @ Z / w.sum()
    eigenvalues, vectors = np.linalg.eigh(R)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order]
    unrotated = vectors[:, :2] * np.sqrt(eigenvalues[:2])
    rotated, turn = varimax(unrotated) if rotation == "varimax" else target_rotation(unrotated, _IW_TARGET)
    rotated, turn = _name_and_orient(rotated, turn)
    coefficients = np.linalg.solve(R, rotated)
    index = pd.Index(ITEMS, name="item")
    return IWModel(items=ITEMS, means=pd.Series(means, index=index), sds=pd.Series(sds, index=index),
                   loadings=pd.DataFrame(rotated, index=index, columns=list(DIMENSIONS)),
                   coefficients=pd.DataFrame(coefficients, index=index, columns=list(DIMENSIONS)),
                   rotation=turn, eigenvalues=eigenvalues, n_fit=int(complete.sum()), weights=weights,
                   method=rotation)


def country_means(survey: Survey, model: IWModel) -> pd.DataFrame:
    """W_WEIGHT-weighted mean of both scores per country (index ``country``), with ``n`` scored."""
    scores = model.scores(survey)
    scores["weight"] = survey.responses["weight"]
    scores["country"] = survey.responses["country"]
    scores = scores.dropna(subset=list(DIMENSIONS))
    rows = {c: {**{d: np.average(g[d], weights=g["weight"]) for d in DIMENSIONS}, "n": len(g)}
            for c, g in scores.groupby("country")}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "country"
    return out


def compare_with_published(means: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Country means next to the published IW map positions (``vpersona/resources/iw_map_positions.csv``).

    Returns the table (country, name, both computed means, ``published_trad_secular``,
    ``published_surv_selfexp``, published year; NaN where a country has no published position)
    and the Pearson correlation per dimension over countries with both (``n`` = their number; NaN
    when fewer than 3 countries have both).
    """
    published = package_table("iw_map_positions.csv").set_index("iso3")
    table = means[list(DIMENSIONS)].copy()
    for dim, col in PUBLISHED_COLUMNS.items():
        table[f"published_{dim}"] = published[col].reindex(table.index).astype(float)
    table["published_year"] = published["year"].reindex(table.index)
    both = table.dropna(subset=[f"published_{d}" for d in DIMENSIONS])
    # a correlation needs at least 3 countries with a published position; fewer give NaN
    corr = {d: float(np.corrcoef(both[d], both[f"published_{d}"])[0, 1]) if len(both) >= 3 else float("nan")
            for d in DIMENSIONS}
    corr["n"] = len(both)
    return table.reset_index(), corr


# --------------------------------------------------------------------------- helpers

def _recoded(survey: Survey, items) -> pd.DataFrame:
    """The IW items with reversed ones flipped (higher = secular / self-expression), NaN = missing."""
    absent = [i for i in items if i not in survey.responses.columns]
    if absent:
        raise ValueError(f"{survey.label} lacks the IW items {absent}; load them (or their components "
                         "Q8 Q14 Q15 Q17 / Q154 Q155) to compute the dimensions")
    catalog = load_catalog()
    X = survey.responses[list(items)].astype(float)
    for item in items:
        if item in REVERSED:
            codes = catalog[item].codes
            X[item] = min(codes) + max(codes) - X[item]
    return X


def _fit_weights(survey: Survey, weights: str) -> np.ndarray:
    w = survey.responses["weight"].to_numpy(dtype=float)
    if weights == "none":
        return np.ones_like(w)
    if weights == "equal_country":
        country = survey.responses["country"]
        return w / survey.responses["weight"].groupby(country).transform("sum").to_numpy()
    return w


def _name_and_orient(rotated: np.ndarray, rotation: np.ndarray):
    """Put the component that loads on the traditional/secular items first, signs positive."""
    trad = [ITEMS.index(i) for i in IW_ITEMS["trad_secular"]]
    surv = [ITEMS.index(i) for i in IW_ITEMS["surv_selfexp"]]
    strength = np.abs(rotated[trad]).sum(axis=0) - np.abs(rotated[surv]).sum(axis=0)
    order = [int(np.argmax(strength)), int(np.argmin(strength))]
    if order[0] == order[1]:
        order = [0, 1]
    rotated, rotation = rotated[:, order], rotation[:, order]
    for j, rows in enumerate((trad, surv)):
        if rotated[rows, j].sum() < 0:
            rotated[:, j] *= -1
            rotation[:, j] *= -1
    return rotated, rotation


def map_positions(table: pd.DataFrame, label: str) -> pd.DataFrame:
    """Long table for the IW map (country, trad_secular, surv_selfexp, source) from
    :func:`compare_with_published`'s table: this data's positions (``source=label``) and the published ones."""
    dims = list(DIMENSIONS)
    ours = table[["country", *dims]].assign(source=label)
    published = table[["country", *[f"published_{d}" for d in dims]]].set_axis(["country", *dims], axis=1)
    return pd.concat([ours, published.assign(source="published IVS map")]).dropna().reset_index(drop=True)
