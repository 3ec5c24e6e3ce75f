"""Sending a grid's queries: cache writes in groups by a background thread, seen by later chunks,
committed while a chunk runs, and their failures never lost (vpersona.llm.querying)."""
import importlib.util
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from vpersona import load_catalog
from vpersona.llm.cache import AnswerCache
from vpersona.llm.grid import run_grid
from vpersona.llm.querying import FLUSH_SECONDS


def _grid_tests():  # the fake backend and persona plans of test_grid.py (tests are not a package)
    spec = importlib.util.spec_from_file_location("_test_grid_helpers", Path(__file__).with_name("test_grid.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FakeBackend, persona_plan = _grid_tests().FakeBackend, _grid_tests().persona_plan
CATALOG = load_catalog()


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
