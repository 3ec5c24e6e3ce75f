"""Runs sharing one answer cache never pay twice for a prompt: two real processes ask the same
grid at the same time through a counting SIMULATED backend, and together they make exactly one
call per distinct prompt; a claim of a run that died lapses and is taken over."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.llm import cache as cache_module
from vpersona.llm.backends.simulated import SimulatedBackend
from vpersona.llm.cache import AnswerCache
from vpersona.llm.grid import plan_requests, run_grid

CATALOG = load_catalog()
ITEMS = ["Q46", "Q57", "Q1", "Q164", "Q8", "Q6", "Q29", "Q36"]


def persona_plan(n_personas: int = 12):  # test_grid.py's plans (tests are not a package)
    spec = importlib.util.spec_from_file_location("_test_grid_helpers", Path(__file__).with_name("test_grid.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.persona_plan(n_personas, items=ITEMS)

# one run: the same persona plan as every other, asked through a SIMULATED backend that counts its
# calls and takes 5 ms each (a real backend subclass: fault injection a real server cannot give
# on demand, i.e. a known call count); it starts at an agreed time so that both runs overlap
RUN = """import asyncio, json, sys, time
import pandas as pd
from vpersona import load_catalog
from vpersona.llm.backends.simulated import SimulatedBackend
from vpersona.llm.cache import AnswerCache
from vpersona.llm.grid import stream_grid

class Counting(SimulatedBackend):
    calls = 0
    async def acomplete(self, query):
        Counting.calls += 1
        await asyncio.sleep(0.005)
        return await super().acomplete(query)

cache_path, plan, out, start = sys.argv[1:5]
pairs, personas = pd.read_pickle(plan)
while time.time() < float(start):
    time.sleep(0.005)
with AnswerCache(cache_path) as cache:
    stats = stream_grid(pairs, personas, out, catalog=load_catalog(), backend=Counting(seed=3), cache=cache,
                        progress=False, concurrency=4, chunk_rows=40)
print(json.dumps({"calls": Counting.calls, "stats_calls": stats["calls"], "from_other_runs": stats["from_other_runs"],
                  "cache_hits": stats["cache_hits"]}))
"""


@pytest.mark.full  # real processes / notebook runs, 7-15 s: the full suite
def test_two_processes_sharing_a_cache_pay_once_per_prompt(tmp_path):
    pairs, personas = persona_plan()
    plan = tmp_path / "plan.pkl"
    pd.to_pickle((pairs, personas), plan)
    cache_path = tmp_path / "shared.sqlite"
    start = time.time() + 4  # both are importing by then
    procs = [subprocess.Popen([sys.executable, "-c", RUN, str(cache_path), str(plan), str(tmp_path / f"{r}.csv"),
                               str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in "ab"]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append((json.loads(out.strip().splitlines()[-1]), err))
    distinct = len(plan_requests(pairs, personas, catalog=CATALOG, backend_identity=SimulatedBackend(seed=3).identity()).requests)
    with AnswerCache(cache_path) as cache:
        assert len(cache) == distinct
    calls = [r["calls"] for r, _ in results]
    taken = [r["from_other_runs"] for r, _ in results]
    hits = [r["cache_hits"] for r, _ in results]  # answered before this run looked them up
    print(f"calls {calls} (sum {sum(calls)}) for {distinct} distinct prompts; taken from the other run while "
          f"it asked {taken}; already in the cache at lookup {hits}")
    assert sum(calls) == distinct  # nothing paid twice
    assert [r["stats_calls"] for r, _ in results] == calls
    assert [c + t + h for c, t, h in zip(calls, taken, hits)] == [distinct, distinct]  # each has every answer
    assert max(taken) > 0  # the runs did overlap: one took answers the other paid for
    for (r, err), t in zip(results, taken):  # and says so
        assert (f"{t} answers taken from another run" in err) == (t > 0)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


class Counting(SimulatedBackend):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = 0

    async def acomplete(self, query):
        self.calls += 1
        return await super().acomplete(query)


def test_the_claims_of_a_run_that_died_lapse_and_are_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "LEASE_SECONDS", 1.0)
    pairs, personas = persona_plan(2)
    backend = Counting(seed=3)
    keys = [r.key for r in plan_requests(pairs, personas, catalog=CATALOG, backend_identity=backend.identity()).requests]
    dead = AnswerCache(tmp_path / "c.sqlite")
    assert dead.claim(keys[:5]) == set()  # it claims five keys, then dies without answering
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        assert cache.claim(keys[:5]) == set(keys[:5])  # a live claimant's keys are left to it
        t0 = time.monotonic()
        table = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False)
        took = time.monotonic() - t0
        assert len(cache) == len(keys)
    assert backend.calls == len(keys) and table.attrs["run_stats"]["from_other_runs"] == 0
    assert 1.0 <= took < 10  # it waited for the lease to lapse, then asked them itself
    dead.close()


def test_a_read_only_cache_serves_what_it_holds_and_refuses_to_ask(tmp_path):
    pairs, personas = persona_plan(2)
    path = tmp_path / "c.sqlite"
    with AnswerCache(path) as cache:
        full = run_grid(pairs, personas, catalog=CATALOG, backend=Counting(seed=3), cache=cache, progress=False)
    with AnswerCache(path, readonly=True) as cache:
        backend = Counting(seed=3)
        again = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False)
        assert backend.calls == 0 and again.drop(columns=[]).equals(full)
        more, _ = persona_plan(4)
        try:
            run_grid(more, persona_plan(4)[1], catalog=CATALOG, backend=backend, cache=cache, progress=False)
            raise AssertionError("a read-only cache asked the backend")
        except cache_module.CacheError as err:
            assert "read-only" in str(err) and str(path) in str(err) and "nothing was asked" in str(err)
        assert backend.calls == 0


def test_the_claims_of_a_killed_process_on_this_host_are_taken_over_at_once(tmp_path):
    """A run killed with SIGKILL (kill -9, the OOM killer) leaves its claims; a resume on the same
    host sees that the claimant's process is gone and does not wait out the lease."""
    pairs, personas = persona_plan(2)
    keys = [r.key for r in plan_requests(pairs, personas, catalog=CATALOG,
                                         backend_identity=Counting(seed=3).identity()).requests][:5]
    claimant = subprocess.run(
        [sys.executable, "-c", "import json, os, sys; from vpersona.llm.cache import AnswerCache; "
         "c = AnswerCache(sys.argv[1]); assert c.claim(json.loads(sys.argv[2])) == set(); os._exit(0)",
         str(tmp_path / "c.sqlite"), json.dumps(keys)], capture_output=True, text=True, timeout=60)
    assert claimant.returncode == 0, claimant.stderr
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        assert cache_module.LEASE_SECONDS >= 30  # the lease has not lapsed: only the dead pid frees them
        assert cache.claim(keys) == set()
