"""JSON text for what the answer cache stores, written fast but read back exactly as the standard
library's ``json.dumps(obj, ensure_ascii=False, default=str)`` would be.

Why not the stdlib alone: the grid stores two JSON objects per reply (the reply and its parsed
answer), and ``json.dumps`` spends ~12 µs on them, more than the SQLite insert; orjson (a
maintained C library) spends ~1 µs. Where the two would differ, the stdlib writes:

- orjson writes NaN and ±Infinity as ``null`` (the stdlib writes ``NaN``/``Infinity``, which
  ``json.loads`` reads back as floats), so any output holding ``null`` is redone by the stdlib;
- types orjson does not take as the stdlib does (dataclasses, datetimes, subclasses of str, int,
  dict or list, float subclasses such as numpy floats, integers beyond 64 bits, non-str keys)
  make orjson raise here (no ``default``, passthrough options), and the stdlib writes those.

Floats are written as their shortest round-trip form by both, so the values read back are equal.
"""
from __future__ import annotations

import json

import orjson

_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def dumps(obj) -> str:
    """``obj`` as JSON text, equal on reading to ``json.dumps(obj, ensure_ascii=False, default=str)``."""
    try:
        blob = orjson.dumps(obj, option=_PASSTHROUGH)
    except TypeError:
        blob = b"null"
    if b"null" in blob:
        return json.dumps(obj, ensure_ascii=False, default=str)
    return blob.decode("utf-8")


def loads(text: str | bytes):
    """``json.loads(text)``, by orjson where it can read it (it refuses NaN and Infinity)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def rows_json(rows: list) -> bytes | None:
    """``rows`` (lists of str, int and None) as one JSON array, or None if orjson cannot write
    them exactly (e.g. a string with a lone surrogate)."""
    try:
        return orjson.dumps(rows)
    except TypeError:
        return None
