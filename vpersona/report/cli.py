"""The ``vpersona`` command: ``run`` the notebooks, ``synthesize`` a SYNTHETIC sample, ``cache`` totals,
``doctor`` (check the engine and setup), ``model`` list|fetch (embedded models), ``batch`` submit|status|collect (OpenAI Batch API) and
write|read (vllm run-batch)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vpersona", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute notebooks/01..04 with papermill into outputs/<run_id>/")
    run.add_argument("--config", default="demo", help="demo | smoke | paper | path/to/config.yaml")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                     help="override one notebook parameter (VALUE parsed as YAML), repeatable; a mapping "
                          "updates the config's mapping key by key (-p SIMULATED '{fidelity: 0.1}' changes "
                          "that knob only)")
    run.add_argument("--run-id", default=None, help="run folder name (default: the config's run_id)")
    run.add_argument("--output-dir", default=None, help="where run folders go (default: outputs/)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")

    sub.add_parser("synthesize", help="generate a SYNTHETIC WVS-7-format sample (`vpersona synthesize --help`)")

    doc = sub.add_parser("doctor", help="check the engine, versions, CPU, cache and server before a long job")
    doc.add_argument("--engine-only", action="store_true", help="only check that the engine answers a prompt")
    doc.add_argument("--cache", default=None, help="answer cache file (default: outputs/llm_cache.sqlite)")

    cache = sub.add_parser("cache", help="totals of an LLM answer cache (answers, tokens)")
    cache.add_argument("path", nargs="?", default=None, help="cache file (default: outputs/llm_cache.sqlite)")
    from vpersona.report import batch_cli, model_cli
    batch_cli.add_parser(sub)
    model_cli.add_parser(sub)
    return ap


def cache_totals(path: str | None) -> int:
    from vpersona.llm.cache import AnswerCache, CacheError
    from vpersona.report.paths import output_dir
    path = Path(path) if path else output_dir() / "llm_cache.sqlite"
    if not path.exists():
        print(f"no cache file at {path}", file=sys.stderr)
        return 1
    try:
        with AnswerCache(path) as cache:
            totals = cache.totals()
    except CacheError as err:
        print(f"[vpersona] {err}", file=sys.stderr)
        return 1
    print(f"{path}: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["synthesize"]:  # the generator has its own argument parser
        from vpersona.data.synthetic import main as synth_main
        return synth_main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from vpersona.report.paths import output_dir
        from vpersona.report.run import main_run
        args.output_dir = args.output_dir or str(output_dir())
        return main_run(args)
    if args.command == "doctor":
        from vpersona.report.doctor import doctor
        return doctor(engine_only=args.engine_only, cache_path=args.cache)
    if args.command == "cache":
        return cache_totals(args.path)
    if args.command == "model":
        from vpersona.report.model_cli import main as model_main
        return model_main(args)
    if args.command == "batch":
        from vpersona.report.batch_cli import main as batch_main
        return batch_main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
