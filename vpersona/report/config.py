"""Run configurations: a small YAML file of notebook parameters, plus command-line overrides.

A config has ``run_id`` and ``parameters`` (UPPER_CASE names, as in the notebooks' ``parameters``
cells). Values of the form ``env:NAME`` are read from the environment when the run starts (for
paths such as the official WVS file; API keys are never parameters). ``configs/`` holds ``demo``,
``smoke`` and ``paper``; ``--config`` takes one of those names or a path.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from vpersona.report.paths import config_dir

SECRET_HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def config_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    candidate = config_dir() / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(q.stem for q in config_dir().glob("*.yaml"))
    raise FileNotFoundError(f"config {str(name_or_path)!r} not found: expected a YAML path or one of {known}")


def load_config(name_or_path: str | Path, overrides: dict | None = None) -> dict:
    """Read a config, apply ``overrides`` (KEY -> value, YAML-parsed strings) and resolve ``env:``."""
    path = config_path(name_or_path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw.get("parameters"), dict):
        raise ValueError(f"{path}: expected a mapping 'parameters:' of notebook parameters")
    params = dict(raw["parameters"])
    for key, value in (overrides or {}).items():
        params[key] = yaml.safe_load(value) if isinstance(value, str) else value
    for key in params:
        if any(h in key.upper() for h in SECRET_HINTS):
            raise ValueError(f"parameter {key!r} looks like a secret: secrets come from the environment "
                             "(OPENAI_API_KEY), never from configs or notebook parameters")
    params = {k: _resolve_env(k, v) for k, v in params.items()}
    return {"name": path.stem, "path": str(path), "run_id": raw.get("run_id", path.stem),
            "parameters": params}


def _resolve_env(key: str, value):
    if isinstance(value, str) and value.startswith("env:"):
        var = value[4:]
        if var not in os.environ:
            raise ValueError(f"parameter {key} = {value!r}: environment variable {var} is not set")
        return os.environ[var]
    return value
