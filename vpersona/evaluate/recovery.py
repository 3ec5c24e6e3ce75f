"""Parameter recovery: plant an effect in the SIMULATED backend, check the pipeline finds it.

Each check runs the real pipeline (:func:`vpersona.evaluate.power.predict` / ``simulate``) in a
world of known knobs and measures what the analysis reports:

- :func:`difference` -- paired ``a - b`` difference with its cluster-bootstrap interval
  (e.g. value vs country personas; negative = ``a`` closer to the humans);
- :func:`calibration_effect` -- held-out ``<kind>+T`` minus ``<kind>`` (negative = calibration helps);
- :func:`gap` -- aligned vs underrepresented gap per method and how it moves between methods;
- :func:`position_bias` -- how far the planted label-position bias moves the predictions (mean JS
  distance to the same world without bias), before (fixed order) and after order debiasing;
- :func:`false_discoveries` -- how often "a beats b" is declared over many seeds in a world
  where it is false.

All results are SIMULATED (not LLM results); tests and ``benchmarks/bench_recovery.py`` use them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from vpersona.evaluate.compare import paired_difference
from vpersona.evaluate.crosscultural import country_groups, gap_change, group_gap
from vpersona.evaluate.metrics import score
from vpersona.evaluate.power import Design, _seeds, predict, simulate


def difference(design: Design, knobs: dict, seed: int, a: str = "value", b: str = "country", *,
               n_boot: int = 1000, unit: str = "items") -> dict:
    """Paired mean ``jsd[a] - jsd[b]`` and its interval in one run."""
    cells = simulate(design, knobs, seed)
    return paired_difference(cells, a, b, unit=unit, n_boot=n_boot, seed=seed)


def calibration_effect(design: Design, knobs: dict, seed: int, kind: str = "value", *, n_boot: int = 1000) -> dict:
    """Held-out ``jsd[kind+T] - jsd[kind]`` (temperature fitted on other questions) and its interval."""
    cells = simulate(design.with_(calibrate=(kind,)), knobs, seed)
    return paired_difference(cells, f"{kind}+T", kind, n_boot=n_boot, seed=seed)


def gap(design: Design, knobs: dict, seed: int, pairs=(("value", "none"), ("value", "country"))) -> dict:
    """Gap (underrepresented - aligned mean jsd) per method and its change between method ``pairs``."""
    cells = simulate(design, knobs, seed)
    gaps = group_gap(cells, country_groups(design.countries))
    changes = gap_change(gaps, [p for p in pairs if set(p) <= set(gaps["method"])])
    return {"gap": dict(zip(gaps["method"], gaps["gap"])),
            "change": {f"{r.to}-{r['from']}": r.change for _, r in changes.iterrows()}}


def _distance(pred: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Mean JS distance between two prediction tables on the same (method, country, item) cells."""
    cells = score(pred, reference.drop(columns=[c for c in reference.columns if c.startswith("n_")]),
                  keys=("method", "country", "item"))
    return float(cells["jsd"].mean())


def position_bias(design: Design, knobs: dict, seed: int, *, debiased: str = "pair") -> dict:
    """Mean JS distance from the bias-free predictions of the same world (same personas, same
    idiosyncrasies, ``position_bias`` 0) under the fixed order (``before``) and under the
    ``debiased`` order (``after``)."""
    clean = predict(design.with_(order="fixed"), {**knobs, "position_bias": 0.0}, seed)
    before = predict(design.with_(order="fixed"), knobs, seed)
    after = predict(design.with_(order=debiased), knobs, seed)
    return {"before": _distance(before, clean), "after": _distance(after, clean), "order": debiased,
            "prompts_before": before.attrs["run_stats"]["calls"], "prompts_after": after.attrs["run_stats"]["calls"]}


def false_discoveries(design: Design, knobs: dict, n_seeds: int = 100, seed: int = 0, a: str = "value",
                      b: str = "country", *, n_boot: int = 500, level: float = 0.95) -> dict:
    """Over ``n_seeds`` seeded runs: share declaring "a beats b" (interval entirely below 0;
    ``rate``, with its exact binomial 95% interval) and share whose interval excludes 0 either
    way (``rate_two_sided``); nominal one-sided rate is (1 - level) / 2."""
    runs = pd.DataFrame([paired_difference(simulate(design, knobs, s), a, b, n_boot=n_boot, level=level, seed=s)
                         for s in _seeds(seed, n_seeds)])
    hits = int((runs["hi"] < 0).sum())
    ci = binomtest(hits, len(runs)).proportion_ci(0.95, method="exact")
    return {"a": a, "b": b, "n_seeds": int(len(runs)), "false_discoveries": hits, "rate": hits / len(runs),
            "rate_lo": float(ci.low), "rate_hi": float(ci.high),
            "rate_two_sided": float(((runs["hi"] < 0) | (runs["lo"] > 0)).mean()),
            "nominal_one_sided": (1 - level) / 2, "mean_difference": float(runs["mean"].mean()),
            "exactly_zero": int(np.isclose(runs[["lo", "hi"]].abs().to_numpy(), 0).all(axis=1).sum())}
