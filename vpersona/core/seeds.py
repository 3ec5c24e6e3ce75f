"""One way to derive random streams and seeds from a run's seed and the parts that identify a draw
(country, persona, item, replicate ...), so that each draw is reproducible and independent of
which other draws a run makes.

Integers enter the stream as themselves, anything else as the UTF-8 bytes of its text:
``rng(2026, "DEU")`` is ``numpy.random.default_rng([2026, 68, 69, 85])``.
"""
from __future__ import annotations

import numpy as np


def _entropy(parts) -> list[int]:
    out = []
    for part in parts:
        if isinstance(part, (bool, np.bool_)) or not isinstance(part, (int, np.integer)):
            out += list(str(part).encode("utf-8"))
        elif part < 0:
            raise ValueError(f"seed parts must be non-negative integers or text; got {part}")
        else:
            out.append(int(part))
    return out


def rng(seed: int, *parts) -> np.random.Generator:
    """A generator for ``seed`` and the parts of one draw."""
    return np.random.default_rng([*_entropy([int(seed)]), *_entropy(parts)])


def derive_seed(seed: int, *parts) -> int:
    """A 31-bit integer seed for ``seed`` and the parts (for APIs that take an int, e.g. sampling)."""
    return int(rng(seed, *parts).integers(2**31))
