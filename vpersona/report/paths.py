"""Where the notebooks and run configs are, and where run folders go.

In a source checkout the notebooks and configs are the repository's ``notebooks/`` and
``configs/``; an installed vpersona carries the same files as ``vpersona.notebooks`` and
``vpersona.configs`` (see ``pyproject.toml``). Run folders go under ``./outputs`` of the directory
the command was started in, unless ``--output-dir`` says otherwise.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]


def _shipped(package: str, folder: str) -> Path:
    checkout = _CHECKOUT / folder
    if (checkout / ".." / "pyproject.toml").exists() and checkout.is_dir():
        return checkout
    return Path(str(resources.files(package)))


def notebook_dir() -> Path:
    return _shipped("vpersona.notebooks", "notebooks")


def config_dir() -> Path:
    return _shipped("vpersona.configs", "configs")


def output_dir() -> Path:
    """``outputs/`` under the current working directory (absolute)."""
    return Path.cwd().resolve() / "outputs"
