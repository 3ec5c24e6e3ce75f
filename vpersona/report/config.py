"""Run configurations: a small YAML file of notebook parameters, plus command-line overrides.

A config has ``run_id`` and ``parameters`` (UPPER_CASE names, as in the notebooks' ``parameters``
cells). Values of the form ``env:NAME`` are read from the environment when the run starts (for
paths such as the official WVS file; credentials are never parameters). ``configs/`` holds
``demo``, ``smoke`` and ``paper``; ``--config`` takes one of those names or a path. Relative
paths in path-like parameters are resolved against the directory the command runs in.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import yaml

from vpersona.report.parameters import ConfigError, refuse_credentials, resolve_paths
from vpersona.report.paths import config_dir

__all__ = ["ConfigError", "config_path", "load_config"]


def config_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    candidate = config_dir() / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(q.stem for q in config_dir().glob("*.yaml"))
    close = difflib.get_close_matches(str(name_or_path), known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise ConfigError(f"config {str(name_or_path)!r} not found: {hint}expected a YAML path or one of "
                      f"{', '.join(known)}")


def load_config(name_or_path: str | Path, overrides: dict | None = None, *, cwd: Path | None = None) -> dict:
    """Read a config, apply ``overrides`` (KEY -> value, YAML-parsed strings; a mapping updates the
    config's mapping key by key, see :func:`merge_override`), resolve ``env:``,
    refuse credentials and make path-like parameters absolute (relative to ``cwd``, default the
    current directory)."""
    path = config_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("parameters"), dict):
        raise ConfigError(f"{path}: expected a mapping 'parameters:' of notebook parameters")
    params = dict(raw["parameters"])
    for key, value in (overrides or {}).items():
        try:
            value = yaml.safe_load(value) if isinstance(value, str) else value
        except yaml.YAMLError:
            raise ConfigError(f"-p {key}: the value is not valid YAML (quote text, e.g. -p {key} "
                              "'\"text\"'; lists as [A, B])") from None
        params[key] = merge_override(params.get(key), value)
    refuse_credentials(params)
    params = {k: _resolve_env(k, v) for k, v in params.items()}
    refuse_credentials(params)  # again: an env: value may carry them
    params = resolve_paths(params, Path(cwd or Path.cwd()).resolve())
    return {"name": path.stem, "path": str(path), "run_id": raw.get("run_id", path.stem),
            "parameters": params}


def merge_override(config_value, override):
    """A mapping given with ``-p`` updates the config's mapping key by key (``-p SIMULATED
    '{fidelity: 0.1}'`` changes one knob, the config's other knobs stay); any other value replaces it."""
    if isinstance(config_value, dict) and isinstance(override, dict):
        return {**config_value, **override}
    return override


def _resolve_env(key: str, value):
    if isinstance(value, str) and value.startswith("env:"):
        var = value[4:]
        if var not in os.environ:
            raise ConfigError(f"parameter {key} = {value!r}: environment variable {var} is not set")
        return os.environ[var]
    return value
