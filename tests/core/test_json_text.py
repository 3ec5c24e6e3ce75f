"""Fast JSON text reads back as the stdlib's would (vpersona.core.json_text)."""
import dataclasses
import datetime
import json
import math

import numpy as np
import pytest

from vpersona.core.json_text import dumps, loads


@dataclasses.dataclass
class _Point:
    x: int = 1


class _Str(str):
    pass


CASES = [{"a": 1.5, "b": [1, 2, None]}, {"inf": -math.inf, "big": 1e308}, {"np": np.float64(0.25), "i": np.int64(3)},
         {1: "int key"}, {"when": datetime.datetime(2026, 1, 1)}, {"dc": _Point()}, {"s": _Str("sub")},
         {"big": 2 ** 70}, {"u": "ü€ \n \"q\""}, [1e16, -0.0, 5e-324, 0.1 + 0.2], {"t": True, "f": False}, []]


@pytest.mark.parametrize("obj", CASES, ids=range(len(CASES)))
def test_reads_back_as_the_stdlib_text(obj):
    assert json.loads(dumps(obj)) == json.loads(json.dumps(obj, ensure_ascii=False, default=str))
    assert loads(dumps(obj)) == json.loads(dumps(obj))


def test_nan_is_kept_as_nan_not_null():
    assert math.isnan(loads(dumps({"x": math.nan}))["x"])
