"""The grid runner: dedup, cache, determinism, order mapping, failures, and a kill -9 resume test."""
import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.llm.backends.base import BackendError
from vpersona.llm.cache import AnswerCache
from vpersona.core.distributions import prob_columns
from vpersona.llm.grid import plan_requests, run_grid

CATALOG = load_catalog()
ITEMS = ["Q46", "Q57", "Q1", "Q164"]

# A deterministic stand-in for an LLM (the real one is tested in test_embedded.py and below): it
# reads the options in the user message and puts most probability on the option whose catalog
# text is the first catalog option ("Very happy", "Most people can be trusted", ...),
# the rest spread by a hash of the messages. So whatever order options are shown in, the answer in
# catalog order has p1 largest.
FAKE_BACKEND_SOURCE = '''
import asyncio, hashlib, json, math, re
from vpersona.llm.backends.base import BackendError, Reply

FIRST_OPTIONS = ("Very happy", "Most people can be trusted", "Very important", "1 (Not at all important)")

class FakeBackend:
    kind = "fake"

    def __init__(self, delay=0.0, log=None, garbage_for=(), fail_after=None):
        self.delay, self.log, self.garbage_for, self.fail_after = delay, log, garbage_for, fail_after
        self.calls = 0

    def identity(self):
        return {"kind": self.kind, "model": "fake-1"}

    async def acomplete(self, query):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise BackendError("fake permanent failure")
        self.calls += 1
        if self.log:
            with open(self.log, "a") as f:
                f.write("call\\n")
        if self.delay:
            await asyncio.sleep(self.delay)
        user = query.message_dicts[-1]["content"]
        if any(g in user for g in self.garbage_for):
            return Reply(texts=["I'm sorry"], top_logprobs={"I": -0.01, "Sorry": -5.0})
        lines = re.findall(r"^([A-Z])\\. (.*)$", user, flags=re.M)
        digest = hashlib.sha256(json.dumps(query.message_dicts, sort_keys=True).encode()).digest()
        top = {}
        for j, (label, text) in enumerate(lines):
            p = 0.5 if any(text.startswith(f) for f in FIRST_OPTIONS) else (1 + digest[j]) / 256 / (2 * len(lines))
            top[label if j % 2 else " " + label] = math.log(p)
        return Reply(texts=[lines[0][0]], top_logprobs=top, usage={"prompt_tokens": len(user) // 4, "completion_tokens": 1})
'''
_ns: dict = {}
exec(FAKE_BACKEND_SOURCE, _ns)
FakeBackend = _ns["FakeBackend"]


def persona_plan(n_personas=3, items=ITEMS, duplicate_text=False):
    texts = [f"You are respondent {i}. God is {'very' if i % 2 else 'not'} important in your life." for i in range(n_personas)]
    if duplicate_text:
        texts[-1] = texts[0]
    personas = pd.DataFrame({"persona_id": range(n_personas), "country": (["NGA", "SWE"] * n_personas)[:n_personas],
                             "kind": "value", "text": texts, "multiplicity": 1})
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": items}), how="cross")
    pairs["multiplicity"] = 1
    return pairs, personas


def test_table_shape_and_columns(tmp_path):
    pairs, personas = persona_plan()
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        table = run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(), cache=cache, progress=False)
    assert list(table.columns) == (list(pairs.columns) + ["replicate", "K"] + prob_columns()
                                   + ["covered_mass", "n_valid", "n_invalid", "answer_weight", "flags", "prompt_hash",
                                      "rendered_hash"])
    assert table[list(pairs.columns)].equals(pairs)  # same rows, same (persona-major) order
    assert table["K"].tolist() == [CATALOG[i].n_options for i in pairs["item"]]
    P = table[prob_columns()].to_numpy()
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert (P[:, 1:] <= P[:, :1]).all()  # p1 is the favoured first catalog option
    for k, row in zip(table["K"], P):
        assert (row[k:] == 0).all()
    stats = table.attrs["run_stats"]
    assert stats["calls"] == len(pairs) and stats["cache_hits"] == 0 and stats["backend"]["model"] == "fake-1"


def test_identical_prompts_are_asked_once_and_cache_makes_rerun_free(tmp_path):
    pairs, personas = persona_plan(n_personas=3, duplicate_text=True)
    backend = FakeBackend()
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        first = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False)
        assert backend.calls == 2 * len(ITEMS)  # persona 2 has persona 0's text
        assert first.attrs["run_stats"]["deduplicated"] == len(ITEMS)
        again = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False)
        assert backend.calls == 2 * len(ITEMS)
        assert again.attrs["run_stats"]["cache_hits"] == 2 * len(ITEMS) and again.attrs["run_stats"]["calls"] == 0
    pd.testing.assert_frame_equal(first, again)
    rows0 = first[first.persona_id == 0].reset_index(drop=True)
    rows2 = first[first.persona_id == 2].reset_index(drop=True)
    assert rows0[prob_columns()].equals(rows2[prob_columns()])


def test_same_inputs_give_an_identical_table_without_cache():
    pairs, personas = persona_plan()
    a = run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(), cache=None, progress=False, concurrency=4)
    b = run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(delay=0.001), cache=None, progress=False,
                 concurrency=1)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("order", ["reversed", "random"])
def test_option_order_is_mapped_back_to_catalog_order(order):
    pairs, personas = persona_plan()
    fixed = run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(), cache=None, progress=False)
    other = run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(), cache=None, progress=False, order=order)
    assert (other["rendered_hash"] != fixed["rendered_hash"]).any()
    P = other[prob_columns()].to_numpy()
    assert (P[:, 1:] <= P[:, :1]).all()  # still p1, whatever position option 1 was shown at
    np.testing.assert_allclose(P.sum(axis=1), 1.0)


def test_random_order_is_per_persona_and_seeded():
    pairs, personas = persona_plan()
    plan = plan_requests(pairs, personas, catalog=CATALOG, backend_identity={"kind": "x"}, order="random", seed=1)
    again = plan_requests(pairs, personas, catalog=CATALOG, backend_identity={"kind": "x"}, order="random", seed=1)
    other = plan_requests(pairs, personas, catalog=CATALOG, backend_identity={"kind": "x"}, order="random", seed=2)
    orders = [r.prompt.option_index for r in plan.requests]
    assert orders == [r.prompt.option_index for r in again.requests]
    assert orders != [r.prompt.option_index for r in other.requests]
    q164 = [r.prompt.option_index for r in plan.requests if r.prompt.item == "Q164"]
    assert len(set(q164)) > 1  # personas differ


def test_replicates_and_sample_seeds():
    pairs, personas = persona_plan(n_personas=2, items=["Q57"])
    plan = plan_requests(pairs, personas, catalog=CATALOG, backend_identity={"kind": "x"}, estimator="sample",
                         replicates=3, n=5)
    assert len(plan.rows) == 6 and plan.rows["replicate"].tolist() == [0, 1, 2, 0, 1, 2]
    seeds = [r.query.param_dict["seed"] for r in plan.requests]
    assert len(plan.requests) == 6 and len(set(seeds)) == 3 and plan.requests[0].query.param_dict["n"] == 5


def test_garbage_never_crashes_and_is_flagged():
    pairs, personas = persona_plan(n_personas=2)
    table = run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(garbage_for=["Taking all things together"]),
                     cache=None, progress=False)
    bad = table[table["item"] == "Q46"]
    assert bad[prob_columns()[:4]].isna().all().all() and (bad["flags"] == "unparseable").all()
    assert (bad["n_valid"] == 0).all() and (bad["n_invalid"] == 1).all()
    good = table[table["item"] != "Q46"]
    assert good[prob_columns()].notna().all().all() and table.attrs["run_stats"]["invalid_rows"] == 2


def test_permanent_failure_stops_the_run_but_keeps_answers(tmp_path):
    pairs, personas = persona_plan()
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(BackendError, match="fake permanent failure"):
            run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(fail_after=5), cache=cache, progress=False,
                     concurrency=2)
        assert len(cache) == 5
        backend = FakeBackend()
        run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False)
        assert backend.calls == len(pairs) - 5


def test_works_inside_a_running_event_loop():
    pairs, personas = persona_plan(n_personas=1)

    async def notebook_cell():  # Jupyter runs cells inside an event loop
        return run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(), cache=None, progress=False)

    assert len(asyncio.run(notebook_cell())) == len(ITEMS)


def test_bad_plans_are_named():
    pairs, personas = persona_plan()
    with pytest.raises(ValueError, match="no persona text"):
        run_grid(pairs.assign(persona_id=pairs.persona_id + 10), personas, catalog=CATALOG, backend=FakeBackend(),
                 cache=None, progress=False)
    with pytest.raises(KeyError, match="Q9999"):
        run_grid(pairs.assign(item="Q9999"), personas, catalog=CATALOG, backend=FakeBackend(), cache=None, progress=False)
    with pytest.raises(ValueError, match="unknown estimator"):
        run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(), cache=None, estimator="x", progress=False)


def test_small_grid_on_the_embedded_model(tmp_path):
    pytest.importorskip("llama_cpp")
    from vpersona.llm.backends.embedded import EmbeddedBackend

    pairs, personas = persona_plan(n_personas=2, items=["Q46", "Q57"])
    backend = EmbeddedBackend()
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        table = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False)
        again = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False)
    pd.testing.assert_frame_equal(table, again)
    np.testing.assert_allclose(table[prob_columns()].sum(axis=1), 1.0)
    assert (table["covered_mass"] > 0).all() and backend.stats.prompts == 4
    assert backend.stats.evaluated_prompt_tokens < backend.stats.prompt_tokens  # persona prefix reused


# --- kill -9 and resume ---------------------------------------------------------------------------

KILL_SCRIPT = FAKE_BACKEND_SOURCE + textwrap.dedent('''
    import sys
    import pandas as pd
    from vpersona import load_catalog
    from vpersona.llm.cache import AnswerCache
    from vpersona.llm.grid import run_grid
    from vpersona.llm.querying import FLUSH_SECONDS


    class CountedEmbedded:
        """The real embedded backend, logging each call it answers."""
        def __init__(self, log):
            from vpersona.llm.backends.embedded import EmbeddedBackend
            self.inner, self.log, self.kind = EmbeddedBackend(), log, "embedded"

        def identity(self):
            return self.inner.identity()

        async def acomplete(self, query):
            with open(self.log, "a") as f:
                f.write("call\\n")
            return await self.inner.acomplete(query)


    cache_path, log_path, out_path, which = sys.argv[1:5]
    n = 10
    personas = pd.DataFrame({"persona_id": range(n), "country": "NGA", "kind": "value", "multiplicity": 1,
                             "text": [f"You are respondent {i}. You are {i} years into your job." for i in range(n)]})
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": ["Q46", "Q57", "Q1", "Q164"]}),
                                                              how="cross").assign(multiplicity=1)
    # replies come 8 per FLUSH_SECONDS, so by the kill (20 calls) some groups are committed, not all
    backend = FakeBackend(delay=FLUSH_SECONDS / 2, log=log_path) if which == "fake" else CountedEmbedded(log_path)
    with AnswerCache(cache_path) as cache:
        table = run_grid(pairs, personas, catalog=load_catalog(), backend=backend, cache=cache, progress=False,
                         concurrency=4)
    table.to_csv(out_path, index=False)
''')


def _calls(log):
    return sum(1 for _ in open(log)) if os.path.exists(log) else 0


@pytest.mark.parametrize("which", ["fake", pytest.param("embedded", marks=pytest.mark.slow)])
def test_kill_9_halfway_then_resume_makes_exactly_the_remaining_calls(tmp_path, which):
    if which == "embedded":
        pytest.importorskip("llama_cpp")
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}

    def run(tag, cache, log):
        return subprocess.Popen([sys.executable, str(script), str(cache), str(log), str(tmp_path / f"{tag}.csv"), which],
                                env=env)

    # uninterrupted reference run
    ref = run("ref", tmp_path / "ref.sqlite", tmp_path / "ref.log")
    assert ref.wait(170) == 0
    total = _calls(tmp_path / "ref.log")
    assert total == 40

    cache, log = tmp_path / "c.sqlite", tmp_path / "run1.log"
    first = run("first", cache, log)
    deadline = time.time() + 120
    while _calls(log) < 20 and time.time() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL
    calls_before_kill = _calls(log)
    with AnswerCache(cache) as c:
        answered = len(c)
    assert 0 < answered < total and answered <= calls_before_kill  # in-flight calls at the kill are lost

    second = run("second", cache, tmp_path / "run2.log")
    assert second.wait(120) == 0
    assert _calls(tmp_path / "run2.log") == total - answered  # exactly the remaining ones
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "second.csv"), pd.read_csv(tmp_path / "ref.csv"))
    print(f"\nkill test ({which}): {total} queries; killed after {calls_before_kill} calls with {answered} answers "
          f"committed; resume made {_calls(tmp_path / 'run2.log')} calls")


PROGRESS_SCRIPT = FAKE_BACKEND_SOURCE + textwrap.dedent('''
    import pandas as pd
    from vpersona import load_catalog
    from vpersona.core import progress
    from vpersona.llm.grid import run_grid

    progress.LOG_INTERVAL = 1.0  # seconds between lines in a log (30 in real runs)
    n = 40
    personas = pd.DataFrame({"persona_id": range(n), "country": "NGA", "kind": "value", "multiplicity": 1,
                             "text": [f"You are respondent {i}." for i in range(n)]})
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": ["Q46", "Q57"]}),
                                                              how="cross").assign(multiplicity=1)
    run_grid(pairs, personas, catalog=load_catalog(), backend=FakeBackend(delay=0.04), cache=None,
             progress=True, concurrency=1)
''')


def test_progress_bar_is_a_few_lines_when_stderr_is_a_file(tmp_path):
    """80 queries over ~3.5 s with stderr redirected to a file: a line per second at most, no \\r redraws
    (a terminal bar would redraw ~35 times)."""
    script, log = tmp_path / "progress.py", tmp_path / "stderr.txt"
    script.write_text(PROGRESS_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "VPERSONA_PROGRESS"} | {"PYTHONPATH": os.getcwd()}
    t0 = time.perf_counter()
    with open(log, "w") as err:
        subprocess.run([sys.executable, str(script)], stderr=err, env=env, check=True, timeout=300)
    seconds = time.perf_counter() - t0
    text = log.read_text()
    lines = [ln for ln in text.splitlines() if "querying fake" in ln]
    assert "\r" not in text and 2 <= len(lines) <= seconds + 2, text
    assert "80/80" in lines[-1]
