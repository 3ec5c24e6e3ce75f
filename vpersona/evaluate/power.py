"""Power of a planned design, by simulation with the SIMULATED backend, and the cost of its real run.

A design (countries, questions, personas per country, persona kinds, estimator, option order) is
run end to end through the library's own pipeline -- :func:`vpersona.build_personas` on the
bundled SYNTHETIC sample, :func:`vpersona.run_grid` against
:class:`~vpersona.llm.backends.simulated.SimulatedBackend`, :func:`vpersona.aggregate`, optional
held-out calibration (:func:`vpersona.cross_fit`), :func:`vpersona.score` against the real WVS-7
marginals -- and the claim "a beats b" is tested with the paired cluster-bootstrap interval of
:func:`vpersona.evaluate.compare.paired_difference`. :func:`power` repeats that over seeds (each a
new persona sample and new simulated idiosyncrasies) and reports how often the interval excludes
0 in the claimed direction. The "effect" is a world, i.e. the simulated backend's knobs; the mean
difference it produces is reported with the power.

:func:`design_cost` prices the same design for a real model (prompts, tokens, dollars through
:mod:`vpersona.llm.cost` and a price table). Everything here is SIMULATED: not LLM results.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from vpersona.calibrate.aggregate import aggregate
from vpersona.calibrate.splits import ItemKFold, cross_fit
from vpersona.calibrate.temperature import MeanPreservingTemperature
from vpersona.data.catalog import load_catalog
from vpersona.data.targets import marginal_distributions
from vpersona.data.wvs import load_bundled_sample
from vpersona.evaluate.compare import paired_difference
from vpersona.evaluate.metrics import score
from vpersona.llm import cost
from vpersona.llm.backends import make_backend
from vpersona.llm.grid import run_grid
from vpersona.llm.orderings import prompts_per_question
from vpersona.personas.build import build_personas

SIMULATED = True  # every table this module returns is SIMULATED (label it so)
DEMO_COUNTRIES = ("AUS", "NZL", "DEU", "RUS", "JPN", "MEX", "NGA", "PAK")
DEMO_ITEMS = ("Q6", "Q29", "Q36", "Q49", "Q69", "Q106", "Q131", "Q150", "Q152", "Q171", "Q185", "Q235")


@dataclass(frozen=True)
class Design:
    """A planned run. ``calibrate``: kinds that also get a held-out calibrated version ``<kind>+T``
    (item folds, ``k_folds``)."""

    countries: tuple = DEMO_COUNTRIES
    items: tuple = DEMO_ITEMS
    n_personas: int = 8
    kinds: tuple = ("none", "country", "value")
    estimator: str = "logprobs"
    order: str = "fixed"
    calibrate: tuple = ()
    k_folds: int = 4
    estimator_params: dict = field(default_factory=dict, hash=False)

    def with_(self, **changes) -> "Design":
        return replace(self, **changes)


@lru_cache(maxsize=8)
def _data(countries: tuple, items: tuple):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not-asked items: their cells simply have no human target
        survey = load_bundled_sample(list(countries))
    return survey, marginal_distributions(list(countries), list(items))


def plan(design: Design, seed: int):
    """The persona plan of ``design`` on the bundled sample; pairs without a human target dropped."""
    survey, human = _data(tuple(design.countries), tuple(design.items))
    p = build_personas(survey, list(design.countries), int(design.n_personas), int(seed), list(design.kinds),
                       list(design.items), catalog=load_catalog())
    has = set(zip(human["country"], human["item"]))
    p.pairs = p.pairs[[(c, i) in has for c, i in zip(p.pairs["country"], p.pairs["item"])]].reset_index(drop=True)
    return p


def predict(design: Design, knobs: dict | None, seed: int, *, backend_seed: int | None = None) -> pd.DataFrame:
    """One SIMULATED run of ``design`` in the world ``knobs``, up to the predicted distribution
    per (method, country, item) (calibrated ``+T`` rows included); ``attrs["run_stats"]``."""
    catalog = load_catalog()
    _, human = _data(tuple(design.countries), tuple(design.items))
    p = plan(design, seed)
    backend = make_backend("simulated", options=knobs, seed=seed if backend_seed is None else backend_seed)
    answers = run_grid(p.pairs, p.personas, catalog=catalog, backend=backend, cache=None, estimator=design.estimator,
                       order=design.order, seed=seed, progress=False, **design.estimator_params)
    pred = aggregate(answers).rename(columns={"kind": "method"})
    kinds = [k for k in design.calibrate if k in set(pred["method"])]
    if kinds:
        split = ItemKFold(min(design.k_folds, pred["item"].nunique()), seed=seed)
        calibrated, _ = cross_fit(MeanPreservingTemperature(), pred[pred["method"].isin(kinds)], human, split,
                                  by="method")
        pred = pd.concat([pred, calibrated.drop(columns=["fold"]).assign(method=lambda d: d["method"] + "+T")],
                         ignore_index=True)
    pred.attrs.update(run_stats=answers.attrs["run_stats"], simulated=True)
    return pred


def simulate(design: Design, knobs: dict | None, seed: int, *, backend_seed: int | None = None) -> pd.DataFrame:
    """:func:`predict`, scored against the real WVS-7 marginals: the cell table (method, country,
    item, jsd, ...), ``attrs["run_stats"]`` of the grid and ``attrs["simulated"]``."""
    pred = predict(design, knobs, seed, backend_seed=backend_seed)
    cells = score(pred, human_targets(design))
    cells.attrs.update(pred.attrs)
    return cells


def human_targets(design: Design) -> pd.DataFrame:
    """The human targets of ``design``: real WVS-7 marginals of its countries and items."""
    return _data(tuple(design.countries), tuple(design.items))[1]


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s) for s in np.random.default_rng(int(seed)).integers(0, 2**31 - 1, size=int(n))]


def power(design: Design, effect: dict, n_sim: int = 100, seed: int = 0, *, a: str = "value", b: str = "country",
          metric: str = "jsd", unit: str = "items", n_boot: int = 500, level: float = 0.95) -> dict:
    """Probability that ``design`` detects "``a`` has lower ``metric`` than ``b``" (paired interval
    entirely below 0) in the world ``effect`` (SIMULATED knobs), over ``n_sim`` seeded runs.

    Keys: ``power`` (share detected) with its exact binomial 95% interval ``power_lo``/``power_hi``,
    ``wrong_way`` (share with the interval entirely above 0), ``mean_difference`` and
    ``sd_difference`` of the per-run mean differences (the effect size this world produces in
    this design), ``n_sim``, ``seconds``, ``simulated`` (True).
    """
    t0 = time.perf_counter()
    rows = []
    for s in _seeds(seed, n_sim):
        cells = simulate(design, effect, s)
        rows.append(paired_difference(cells, a, b, metric=metric, unit=unit, n_boot=n_boot, level=level, seed=s))
    runs = pd.DataFrame(rows)
    hits = int((runs["hi"] < 0).sum())
    ci = binomtest(hits, len(runs)).proportion_ci(0.95, method="exact")
    return {"power": hits / len(runs), "power_lo": float(ci.low), "power_hi": float(ci.high),
            "wrong_way": float((runs["lo"] > 0).mean()), "mean_difference": float(runs["mean"].mean()),
            "sd_difference": float(runs["mean"].std(ddof=1)) if len(runs) > 1 else float("nan"),
            "n_sim": int(len(runs)), "seconds": time.perf_counter() - t0, "simulated": True}


def fair_null(design: Design, knobs: dict) -> tuple[Design, dict, str, str]:
    """A null world for ``design`` where neither arm can win: (design, knobs, a, b).

    value+country vs demographic personas at fidelity 0: both name the country, both are N
    distinct texts per country, both get the same noise. (value vs country at fidelity 0 is not
    one: without noise the two arms are identical and the interval is exactly 0 every time; with
    noise the N distinct value texts average their idiosyncrasies over N, the one country text
    keeps its own, so value genuinely wins.)"""
    return (design.with_(kinds=("demographic", "value+country"), calibrate=()), {**(knobs or {}), "fidelity": 0.0},
            "value+country", "demographic")


def power_curve(design: Design, effects: dict, sizes, n_sim: int = 50, seed: int = 0, **kwargs) -> pd.DataFrame:
    """:func:`power` for each personas-per-country in ``sizes`` and each named world in ``effects``
    (name -> knobs). One row per (effect, n_personas), columns of :func:`power` + ``effect``."""
    rows = []
    for name, knobs in effects.items():
        for n in sizes:
            res = power(design.with_(n_personas=int(n)), knobs, n_sim=n_sim, seed=seed, **kwargs)
            rows.append({"effect": name, "n_personas": int(n), **res})
    return pd.DataFrame(rows)


def design_cost(design: Design, *, model: str, prices=None, seed: int = 0, replicates: int = 1,
                mean_completion_tokens: float = 1.0) -> dict:
    """Prompts, tokens and (with a price table) dollars of the real run of ``design``, from its
    persona plan on the bundled sample (an upper bound: before deduplication and cache hits).
    The option order multiplies the prompts (``pair`` asks each question twice, ``cyclic`` K times)."""
    p = plan(design, seed)
    catalog = load_catalog()
    per_pair = p.pairs["item"].map(lambda c: prompts_per_question(catalog[c].n_options, design.order, replicates))
    factor = float(per_pair.mean()) if len(per_pair) else 1.0
    est = cost.estimate_grid_cost(p.personas, p.pairs, model=model, catalog=catalog, prices=prices, replicates=1,
                                  mean_completion_tokens=mean_completion_tokens)
    scaled = {k: (v * factor if k in ("n_prompts", "prompt_tokens", "completion_tokens", "input_usd", "output_usd",
                                      "total_usd") and v is not None else v) for k, v in est.items()}
    scaled["n_prompts"] = int(round(scaled["n_prompts"]))
    scaled.update(n_pairs=int(len(p.pairs)), prompts_per_pair=factor, order=design.order)
    return scaled
