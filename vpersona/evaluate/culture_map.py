"""A two-dimensional map of countries from the target items, to compare human and simulated positions.

The IW map itself is built from the value items, which the personas contain, so simulated
positions on it would be circular. Instead: principal components of the *human* country-mean
answers over the target items (ordered items, means scaled to [0, 1], columns standardised);
each method's predicted country means are projected into that same space. A method that gets
countries' relative positions right lands near the human points; one that collapses countries
together lands near the centre.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from vpersona.data.catalog import Catalog, load_catalog
from vpersona.core.distributions import to_matrix


def country_means(table: pd.DataFrame, catalog: Catalog | None = None) -> pd.DataFrame:
    """Country × item matrix of mean answer positions scaled to [0, 1] (ordered items only)."""
    catalog = catalog or load_catalog()
    ordered = table["item"].map(lambda c: catalog[c].is_ordered).to_numpy(dtype=bool)
    t = table[ordered]
    P, K = to_matrix(t)
    mean = (P * np.arange(P.shape[1])).sum(axis=1) / np.maximum(K - 1, 1)
    return pd.DataFrame({"country": t["country"].to_numpy(), "item": t["item"].to_numpy(), "m": mean}) \
        .pivot(index="country", columns="item", values="m").sort_index()


def culture_map(human: pd.DataFrame, predictions: dict[str, pd.DataFrame], *,
                catalog: Catalog | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Positions (country, method, dim1, dim2) of 'human' and each prediction; also the explained
    variance ratio of the two components. Items missing in any table are left out."""
    H = country_means(human, catalog)
    preds = {m: country_means(t, catalog) for m, t in predictions.items()}
    items = [c for c in H.columns if all(c in p.columns for p in preds.values())]
    H = H[items].dropna(axis=1, how="any")
    items = list(H.columns)
    if len(items) < 2 or len(H) < 3:
        raise ValueError(f"a culture map needs ≥ 3 countries and ≥ 2 ordered items common to all tables "
                         f"(got {len(H)} countries, {len(items)} items)")
    mu, sd = H.mean(), H.std(ddof=0).replace(0, 1.0)
    Z = ((H - mu) / sd).to_numpy()
    _, s, Vt = np.linalg.svd(Z, full_matrices=False)
    V = Vt[:2].T
    # fix signs so the map is reproducible: each axis points toward its largest loading
    V *= np.sign(V[np.abs(V).argmax(axis=0), [0, 1]])
    explained = (s[:2] ** 2) / (s ** 2).sum()
    rows = []
    for method, M in [("human", H)] + [(m, p.reindex(index=H.index)[items]) for m, p in preds.items()]:
        XY = ((M - mu) / sd).to_numpy() @ V
        rows.append(pd.DataFrame({"country": M.index, "method": method, "dim1": XY[:, 0], "dim2": XY[:, 1]}))
    return pd.concat(rows, ignore_index=True), explained
