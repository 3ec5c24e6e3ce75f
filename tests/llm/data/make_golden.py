"""Writes main's answers table for a small grid (the reference the streaming writer must match).

    PYTHONPATH=/work/main python tests/llm/data/make_golden.py tests/llm/data tests/llm   # with main's vpersona
"""
import sys
sys.path.insert(0, sys.argv[2])  # the tests dir of the worktree (for the FakeBackend source)
from vpersona import load_catalog
from vpersona.llm.grid import run_grid
from test_grid import FakeBackend, persona_plan
catalog = load_catalog()
pairs, personas = persona_plan(n_personas=4, items=["Q46", "Q57", "Q1", "Q164", "Q8"], duplicate_text=True)
pairs.loc[pairs.persona_id == 1, "country"] = "NA"; personas.loc[personas.persona_id == 1, "country"] = "NA"  # read back as a code, not missing
parts = []
for order, est, kw in (("fixed", "logprobs", {}), ("reversed", "logprobs", {}), ("random", "logprobs", {}),
                       ("random", "sample", {"n": 3}), ("fixed", "verbalized", {}), ("pair", "logprobs", {}),
                       ("cyclic", "logprobs", {"contextual": True})):
    t = run_grid(pairs, personas, catalog=catalog, backend=FakeBackend(garbage_for=["Taking all things together"]),
                 cache=None, progress=False, estimator=est, order=order, replicates=2 if est == "sample" else 1,
                 seed=7, **kw)
    t.to_csv(f"{sys.argv[1]}/answers_{order}_{est}.csv", index=False, float_format="%.10g")
