"""Where the notebooks and run configs are, and where run folders go.

In a source checkout the notebooks and configs are the repository's ``notebooks/`` and
``configs/``; an installed vpersona carries the same files as ``vpersona.notebooks`` and
``vpersona.configs`` (see ``pyproject.toml``). Run folders go under ``./outputs`` of the directory
the command was started in, unless ``--output-dir`` says otherwise.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]


def _shipped(package: str, folder: str) -> Path:
    checkout = _CHECKOUT / folder
    if (_CHECKOUT / "pyproject.toml").exists() and checkout.is_dir():
        return checkout
    # the shipped folders are namespace packages (no __init__.py): resources.files() gives a
    # MultiplexedPath there, whose str() is not a path, so ask the import system where it is
    spec = importlib.util.find_spec(package)
    return Path(next(iter(spec.submodule_search_locations)))


def notebook_dir() -> Path:
    return _shipped("vpersona.notebooks", "notebooks")


def config_dir() -> Path:
    return _shipped("vpersona.configs", "configs")


def output_dir() -> Path:
    """``outputs/`` under the current working directory (absolute)."""
    return Path.cwd().resolve() / "outputs"
