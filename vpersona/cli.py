"""The ``vpersona`` command: ``run`` the notebooks, ``synthesize`` a SYNTHETIC sample, ``cache`` stats."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vpersona", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute notebooks/01..04 with papermill into outputs/<run_id>/")
    run.add_argument("--config", default="demo", help="demo | smoke | paper | path/to/config.yaml")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                     help="override one notebook parameter (VALUE parsed as YAML), repeatable")
    run.add_argument("--run-id", default=None, help="run folder name (default: the config's run_id)")
    run.add_argument("--output-dir", default=None, help="where run folders go (default: outputs/)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")

    syn = sub.add_parser("synthesize", help="generate a SYNTHETIC WVS-7-format sample (see vpersona.synthetic)")
    syn.add_argument("args", nargs=argparse.REMAINDER)

    cache = sub.add_parser("cache", help="show statistics of an LLM answer cache")
    cache.add_argument("path", nargs="?", default=None)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from .run import OUTPUT_DIR, main_run
        args.output_dir = args.output_dir or str(OUTPUT_DIR)
        return main_run(args)
    if args.command == "synthesize":
        from .synthetic import main as synth_main
        return synth_main(args.args) or 0
    if args.command == "cache":
        from .cache import main as cache_main
        return cache_main(args.path) or 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
