"""One seed function for every seeded choice of a run (persona draws, option orders, sampling).

``derive_seed(seed, *parts)`` hashes the run seed with any parts (country, persona id, item,
replicate, ...) into a 31-bit integer: the same parts give the same seed on every machine and
Python version (SHA-256 of the parts joined by ':', not Python's salted ``hash``), and changing
any part gives an unrelated seed.
"""
from __future__ import annotations

import hashlib


def derive_seed(seed, *parts) -> int:
    """A 31-bit seed from the run seed and any parts, stable across runs and machines."""
    blob = ":".join(str(p) for p in (seed, *parts)).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") >> 1
