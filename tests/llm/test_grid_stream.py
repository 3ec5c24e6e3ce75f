"""The streaming grid: same bytes as main's answers table, whatever the chunking; flat planning;
cache writes in groups by a background thread, seen by later chunks (vpersona.llm.querying)."""
import gzip
import importlib.util
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.llm.answers_file import AnswersWriter, read_answers, to_csv_bytes
from vpersona.llm.backends.base import cache_key
from vpersona.llm.cache import AnswerCache
from vpersona.llm.estimators import make_estimator
from vpersona.llm.grid import derived_seed, iter_plans, plan_requests, run_grid, stream_grid
from vpersona.llm.orderings import orderings
from vpersona.llm.prompts import render
from vpersona.llm.querying import FLUSH_SECONDS


def _grid_tests():  # the fake backend and persona plans of test_grid.py (tests are not a package)
    spec = importlib.util.spec_from_file_location("_test_grid_helpers", Path(__file__).with_name("test_grid.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FakeBackend, persona_plan = _grid_tests().FakeBackend, _grid_tests().persona_plan
CATALOG = load_catalog()
DATA = Path(__file__).parent / "data"
CASES = [("fixed", "logprobs", {}), ("reversed", "logprobs", {}), ("random", "logprobs", {}),
         ("random", "sample", {"n": 3}), ("fixed", "verbalized", {}), ("pair", "logprobs", {}),
         ("cyclic", "logprobs", {"contextual": True})]


def golden_plan():
    """The grid of data/make_golden.py, whose CSVs main's run_grid + to_csv wrote."""
    pairs, personas = persona_plan(n_personas=4, items=["Q46", "Q57", "Q1", "Q164", "Q8"], duplicate_text=True)
    pairs.loc[pairs.persona_id == 1, "country"] = "NA"
    personas.loc[personas.persona_id == 1, "country"] = "NA"
    return pairs, personas


@pytest.mark.parametrize("order,estimator,kw", CASES)
@pytest.mark.parametrize("chunk_rows,suffix", [(10_000, ".csv"), (3, ".csv.gz")])
def test_stream_is_byte_identical_to_mains_table(tmp_path, order, estimator, kw, chunk_rows, suffix):
    pairs, personas = golden_plan()
    out = tmp_path / f"answers{suffix}"
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        stats = stream_grid(pairs, personas, out, catalog=CATALOG, backend=FakeBackend(garbage_for=["Taking all things together"]),
                            cache=cache, progress=False, estimator=estimator, order=order,
                            replicates=2 if estimator == "sample" else 1, seed=7, chunk_rows=chunk_rows, **kw)
    data = gzip.decompress(out.read_bytes()) if suffix.endswith(".gz") else out.read_bytes()
    assert data == (DATA / f"answers_{order}_{estimator}.csv").read_bytes()
    assert stats["rows"] == len(pairs) * (2 if estimator == "sample" else 1)
    assert not out.with_name(out.name + ".part").exists()


def test_chunking_changes_no_byte_and_no_call(tmp_path):
    pairs, personas = persona_plan(n_personas=4, duplicate_text=True)
    whole, chunked = FakeBackend(), FakeBackend()
    a = run_grid(pairs, personas, catalog=CATALOG, backend=whole, cache=None, progress=False)
    b = run_grid(pairs, personas, catalog=CATALOG, backend=chunked, cache=None, progress=False, chunk_rows=3)
    assert to_csv_bytes(a) == to_csv_bytes(b)
    # persona 3 repeats persona 0's text in a later chunk: answered from the (scratch) cache
    assert whole.calls == chunked.calls == 3 * 4
    assert b.attrs["run_stats"]["calls"] + b.attrs["run_stats"]["cache_hits"] == b.attrs["run_stats"]["unique_queries"]


def test_gzip_output_is_reproducible_and_read_back(tmp_path):
    pairs, personas = golden_plan()
    paths = [tmp_path / "a.csv.gz", tmp_path / "b.csv.gz"]
    for p in paths:
        stream_grid(pairs, personas, p, catalog=CATALOG, backend=FakeBackend(), cache=None, progress=False)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    table = read_answers(paths[0])
    assert "NA" in set(table["country"]) and len(table) == len(pairs)


def test_pairs_may_come_as_an_iterable_of_chunks(tmp_path):
    pairs, personas = persona_plan(n_personas=4)
    whole = run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(), cache=None, progress=False)
    out = tmp_path / "a.csv"
    stream_grid((pairs.iloc[i:i + 5] for i in range(0, len(pairs), 5)), personas, out, catalog=CATALOG,
                backend=FakeBackend(), cache=None, progress=False)
    assert out.read_bytes() == to_csv_bytes(whole)
    # whatever sizes the chunks come in, the harness works in chunks of its own chunk_rows
    parts = (pairs.iloc[a:b] for a, b in [(0, 1), (1, 2), (2, 9), (9, 9), (9, len(pairs))])
    plans = list(iter_plans(parts, personas, catalog=CATALOG, backend_identity={"kind": "x"}, chunk_rows=4))
    assert [len(p.rows) for p in plans] == [4] * (len(pairs) // 4) + ([len(pairs) % 4] if len(pairs) % 4 else [])
    assert pd.concat([p.rows for p in plans], ignore_index=True).equals(pairs.reset_index(drop=True).assign(replicate=0))


def test_a_failed_run_leaves_no_complete_looking_file(tmp_path):
    pairs, personas = persona_plan()
    out = tmp_path / "a.csv"
    with pytest.raises(Exception, match="fake permanent failure"):
        stream_grid(pairs, personas, out, catalog=CATALOG, backend=FakeBackend(fail_after=5), cache=None,
                    progress=False, chunk_rows=4)
    assert not out.exists()


@pytest.mark.parametrize("order,estimator,kw", CASES)
def test_fast_planner_equals_render_make_query_cache_key(order, estimator, kw):
    pairs, personas = persona_plan(n_personas=3, items=["Q46", "Q164", "Q8"])
    personas.loc[2, "text"] = ""  # the `none` persona: no system message
    text = personas.set_index("persona_id")["text"]
    identity = {"kind": "x", "model": "m", "extra_body": {"top_k": 0}}
    est = make_estimator(estimator, **kw)
    n = 0
    for plan in iter_plans(pairs, personas, catalog=CATALOG, backend_identity=identity, estimator=estimator,
                           order=order, seed=3, replicates=2, chunk_rows=4, **kw):
        for row, ids in zip(plan.rows.itertuples(), plan.row_requests):
            item = CATALOG[row.item]
            perms = orderings(item.n_options, order, seed=3, country=row.country, persona=row.persona_id,
                              item=row.item, replicate=row.replicate)
            assert len(ids) == len(perms)
            for j, perm in zip(ids, perms):
                req = plan.requests[j]
                prompt = render(text[row.persona_id], item, estimator=estimator, option_index=perm)
                params = {"seed": derived_seed(3, "replicate", row.replicate)} if est.uses_seed else {}
                query = est.make_query(prompt, **params)
                assert req.prompt == prompt and req.query == query and req.replicate == row.replicate
                assert req.key == cache_key(identity, query, estimator, row.replicate)
                n += 1
    assert n >= 2 * len(pairs)


def test_planner_self_check_catches_a_disagreement(monkeypatch):
    import vpersona.llm.grid_plan as grid
    pairs, personas = persona_plan(n_personas=1)
    monkeypatch.setattr(grid, "cache_key", lambda *a: "not the planner's key")
    with pytest.raises(RuntimeError, match="internal error"):
        plan_requests(pairs, personas, catalog=CATALOG, backend_identity={"kind": "x"})


def test_writer_matches_pandas_on_awkward_cells(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"f": np.r_[rng.normal(size=6), np.nan, np.inf, -0.0, 1e-12, 1e16, 3.0],
                          "i": np.arange(12), "b": [True, False] * 6,
                          "s": ['plain', 'a,b', 'quote "x"', "new\nline", "", None, "NA", "é", "x", "y", "z", np.nan]})
    out = tmp_path / "t.csv"
    with AnswersWriter(out) as w:
        w.write(table.iloc[:5])
        w.write(table.iloc[5:])
    assert out.read_bytes() == to_csv_bytes(table)
    plain = pd.DataFrame({"s": ["", " lead", "tab\there", "semi;colon", "é€", None, "'single'"], "i": range(7)})
    for t in (plain, plain[["s"]], plain.iloc[:0]):  # joined by hand; one column or no row: the csv writer
        with AnswersWriter(out) as w:
            w.write(t)
        assert out.read_bytes() == to_csv_bytes(t)
    cat = table.assign(s=table["s"].astype("category"))  # not handled by hand: pandas writes it
    with AnswersWriter(out) as w:
        w.write(cat)
    assert out.read_bytes() == to_csv_bytes(cat)


def test_put_many_is_one_transaction_and_keeps_first(tmp_path):
    from vpersona.llm.backends.base import Reply
    r1, r2 = Reply(texts=["A"], usage={"prompt_tokens": 3, "completion_tokens": 1}), Reply(texts=["B"])
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([("k1", r1, {"dist": [1.0]}), ("k2", r1, None)], backend="f", estimator="logprobs", model="m")
        cache.put_many([("k1", r2, None)], backend="f", estimator="logprobs")
        assert len(cache) == 2 and cache.get("k1").texts == ["A"]
        assert cache.stats.prompt_tokens == 6 and cache.totals()["prompt_tokens"] == 6


@pytest.mark.parametrize("low_mass", ["weight", "drop"])
def test_one_ordering_table_equals_the_general_table_with_low_mass_replies(low_mass):
    import vpersona.llm.grid as grid
    pairs, personas = persona_plan(n_personas=3)
    backend = FakeBackend(garbage_for=["Taking all things together"])
    plan = plan_requests(pairs, personas, catalog=CATALOG, backend_identity=backend.identity(), min_mass=0.9,
                         low_mass=low_mass, order="random", seed=5)
    replies = {r.key: grid.run_coroutine(backend.acomplete(r.query)) for r in plan.requests}
    answers = grid._parse_all(plan, replies)
    assert any("low_mass" in a.flags for a in answers) and any(not a.ok for a in answers)
    fast, slow = grid._one_ordering_table(plan, answers, 0.9), grid._general_table(plan, answers, 0.9)
    assert to_csv_bytes(fast) == to_csv_bytes(slow) and fast.attrs == slow.attrs


# --- cache writes: groups by a background thread (vpersona.llm.querying) ---------------------------

def test_a_later_chunk_sees_the_replies_of_earlier_ones_however_slow_the_writes(tmp_path, monkeypatch):
    put_many = AnswerCache.put_many

    def slow_put_many(self, *args, **kwargs):
        time.sleep(0.3)  # the write thread is still at work when the next chunk looks its keys up
        return put_many(self, *args, **kwargs)

    monkeypatch.setattr(AnswerCache, "put_many", slow_put_many)
    pairs, personas = persona_plan(n_personas=4, duplicate_text=True)  # persona 3 = persona 0, the next chunk
    backend = FakeBackend()
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        table = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False, chunk_rows=8)
        n_items = pairs["item"].nunique()
        assert len(cache) == 3 * n_items  # 3 distinct persona texts
    assert backend.calls == 3 * n_items and table.attrs["run_stats"]["cache_hits"] == n_items


def test_replies_are_committed_while_the_chunk_still_runs(tmp_path):
    path = tmp_path / "c.sqlite"
    pairs, personas = persona_plan(n_personas=4)
    backend = FakeBackend(delay=FLUSH_SECONDS / 4)
    first_seen, done = [], threading.Event()

    def watch():  # another connection, as another process would see the file
        while not done.is_set():
            if path.exists():
                try:
                    with sqlite3.connect(path) as conn:
                        if conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]:
                            first_seen.append(time.monotonic())
                            return
                except sqlite3.OperationalError:  # not yet created
                    pass
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    with AnswerCache(path) as cache:
        watcher.start()
        t0 = time.monotonic()
        run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False, concurrency=1)
        took = time.monotonic() - t0
        done.set()
        watcher.join()
    # 12 replies, one every FLUSH_SECONDS / 4: the first are committed well before the run ends
    assert took > 2.5 * FLUSH_SECONDS
    assert first_seen and first_seen[0] - t0 < 1.5 * FLUSH_SECONDS + 0.3


def test_a_failed_cache_write_stops_the_run_with_its_error(tmp_path, monkeypatch):
    def full_disk(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(AnswerCache, "put_many", full_disk)
    pairs, personas = persona_plan(n_personas=2)
    with AnswerCache(tmp_path / "c.sqlite") as cache, pytest.raises(sqlite3.OperationalError, match="disk is full"):
        run_grid(pairs, personas, catalog=CATALOG, backend=FakeBackend(), cache=cache, progress=False)
