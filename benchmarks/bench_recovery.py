"""Parameter recovery with the SIMULATED backend, full version (fast ones: tests/evaluate/test_recovery.py).

Plants known effects in the simulated respondent and runs the real pipeline on the demo design
(8 countries x 12 questions, N personas per country, bundled SYNTHETIC sample, real WVS-7 marginals
as targets): the recovery table (knobs -> value-country difference with its paired 95% interval
over items, calibration effect, gap change, position bias before/after order debiasing) and the
false-discovery rate in fair nulls (both arms N distinct texts, same noise, fidelity 0) over
many seeds, with its exact binomial interval. SIMULATED: these are not LLM results. Usage::

    .venv/bin/python benchmarks/bench_recovery.py [--seeds 200] [--n-personas 8] [--fdr-only] [--out recovery.json]
"""
import argparse
import json
import time
import warnings

from vpersona.evaluate import recovery as R
from vpersona.evaluate.power import Design, fair_null

FAITHFUL = {"fidelity": 0.9, "country": 0.2}


def fmt(r: dict) -> str:
    return f"{r['mean']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}]"


def recovery_rows(design: Design, seed: int, n_boot: int) -> list[dict]:
    rows = []
    worlds = {"faithful": FAITHFUL, "faithful, noise 0.3": {**FAITHFUL, "noise": 0.3},
              "fidelity 0": {"fidelity": 0.0, "country": 0.2}, "fidelity 0, country 0": {"fidelity": 0.0, "country": 0.0},
              "fidelity 0, country 0, noise 0.3": {"fidelity": 0.0, "country": 0.0, "noise": 0.3}}
    for name, knobs in worlds.items():
        for b in ("country", "none"):
            rows.append({"check": f"value - {b}", "world": name, "knobs": knobs,
                         "result": fmt(R.difference(design, knobs, seed, "value", b, n_boot=n_boot))})
    for c in (0.0, 0.5):
        knobs = {**FAITHFUL, "compression": c}
        rows.append({"check": "value+T - value (held out)", "world": f"compression {c}", "knobs": knobs,
                     "result": fmt(R.calibration_effect(design, knobs, seed, n_boot=n_boot))})
    for w in (0.0, 0.6):
        knobs = {**FAITHFUL, "western_pull": w}
        g = R.gap(design, knobs, seed)
        rows.append({"check": "gap (underrep. - aligned)", "world": f"western_pull {w}", "knobs": knobs,
                     "result": ", ".join(f"{m} {v:+.3f}" for m, v in g["gap"].items())
                     + " | change value-none " + f"{g['change']['value-none']:+.3f}"})
    for order in ("reversed", "pair", "cyclic"):
        knobs = {**FAITHFUL, "position_bias": 0.5, "noise": 0.3}
        r = R.position_bias(design, knobs, seed, debiased=order)
        rows.append({"check": "position bias: JSD to bias-free", "world": f"bias 0.5, noise 0.3, ORDER {order}",
                     "knobs": knobs, "result": f"fixed {r['before']:.4f} -> {order} {r['after']:.4f} "
                                               f"({r['prompts_before']} -> {r['prompts_after']} prompts)"})
    return rows


def fdr_rows(design: Design, n_seeds: int, n_boot: int) -> list[dict]:
    """Fair nulls only: both arms N distinct texts and the same noise (power.fair_null). Not
    value vs country at fidelity 0: identical arms without noise (exactly 0 every run), and with
    noise the N distinct value texts average it away, a real advantage, not a false discovery. The
    simulated backend reads no demographic sentence, so without noise these arms are identical too:
    both nulls have noise."""
    nulls = [fair_null(design, {"country": 0.2, "noise": 0.3}), fair_null(design, {"country": 0.0, "noise": 0.5})]
    rows = []
    for d, knobs, a, b in nulls:
        t0 = time.perf_counter()
        r = R.false_discoveries(d, knobs, n_seeds, 2026, a, b, n_boot=n_boot)
        rows.append({**r, "knobs": knobs, "seconds": round(time.perf_counter() - t0, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--fdr-only", action="store_true", help="only the false-discovery table")
    ap.add_argument("--n-personas", type=int, default=8)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    design = Design(n_personas=args.n_personas)
    t0 = time.perf_counter()
    rows = [] if args.fdr_only else recovery_rows(design, args.seed, args.n_boot)
    if rows:
        print(f"SIMULATED recovery, demo design (8 countries x 12 questions, N={args.n_personas}), seed {args.seed}, "
              f"{time.perf_counter() - t0:.0f} s")
        print("| check | world (knobs) | measured (mean [95% paired interval over items]) |\n|---|---|---|")
        for r in rows:
            print(f"| {r['check']} | {r['world']} `{r['knobs']}` | {r['result']} |")
    fdr = fdr_rows(design, args.seeds, min(args.n_boot, 500))
    print(f"\nSIMULATED false discoveries ('a beats b': 95% interval entirely below 0) in fair nulls, "
          f"{args.seeds} seeds, N={args.n_personas}:")
    for r in fdr:
        print(f"  {r['a']} vs {r['b']} {r['knobs']}: {r['false_discoveries']}/{r['n_seeds']} = {r['rate']:.3f} "
              f"[{r['rate_lo']:.3f}, {r['rate_hi']:.3f}] (nominal {r['nominal_one_sided']:.3f}); two-sided "
              f"{r['rate_two_sided']:.3f}; mean difference {r['mean_difference']:+.4f}; "
              f"{r['exactly_zero']} runs exactly 0; {r['seconds']} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"simulated": True, "recovery": rows, "false_discoveries": fdr}, f, indent=2, default=str)


if __name__ == "__main__":
    main()
