"""The SQLite answer cache: round trip, durability, concurrent writers, refusal of foreign files."""
import multiprocessing as mp
import sqlite3

import pytest

from vpersona.llm.backends.base import Reply
from vpersona.llm.cache import AnswerCache, CacheError


def _reply(i: int) -> Reply:
    return Reply(texts=[f"A{i}"], top_logprobs={"A": -0.1 * i, " B": -2.5}, usage={"prompt_tokens": 10, "completion_tokens": 1},
                 raw={"id": i, "nested": [1, 2.5, None]})


def test_round_trip_and_stats(tmp_path):
    path = tmp_path / "answers.sqlite"
    with AnswerCache(path) as cache:
        assert cache.get("k1") is None
        cache.put("k1", _reply(1), backend="fake", estimator="logprobs", model="m", answer={"dist": [1.0, None]})
        got = cache.get("k1")
        assert got.texts == ["A1"] and got.top_logprobs == {"A": -0.1, " B": -2.5} and got.raw["nested"] == [1, 2.5, None]
        assert cache.get_many(["k1", "k2", "k1"]).keys() == {"k1"}
        assert cache.stats.as_dict() == {"hits": 2, "misses": 2, "calls": 1, "prompt_tokens": 10, "completion_tokens": 1}
        assert "k1" in cache and len(cache) == 1
    with AnswerCache(path) as again:  # persisted, stats are per object
        assert again.get("k1").usage == {"prompt_tokens": 10, "completion_tokens": 1}
        assert again.stats.hits == 1 and again.totals() == {"answers": 1, "prompt_tokens": 10, "completion_tokens": 1}
        row = again._conn.execute("SELECT backend, model, estimator, answer, created_at FROM answers").fetchone()
        assert row[:3] == ("fake", "m", "logprobs") and '"dist"' in row[3] and row[4].endswith("+00:00")


def test_wal_mode_and_duplicate_put_keeps_first(tmp_path):
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        assert cache._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cache.put("k", _reply(1), backend="fake", estimator="sample")
        cache.put("k", _reply(2), backend="fake", estimator="sample")
        assert cache.get("k").texts == ["A1"] and len(cache) == 1


def test_each_put_is_committed_at_once(tmp_path):
    path = tmp_path / "c.sqlite"
    writer = AnswerCache(path)
    writer.put("k", _reply(3), backend="fake", estimator="logprobs")
    reader = sqlite3.connect(path)  # another connection sees it before the writer closes
    assert reader.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 1
    reader.close()
    writer.close()


def test_refuses_a_non_sqlite_file_and_leaves_it_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my precious notes, not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(CacheError, match=r"notes\.txt is not an SQLite database.*expected a vpersona answer cache"):
        AnswerCache(path)
    assert path.read_bytes() == before


def test_refuses_a_foreign_sqlite_file(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE invoices (id INTEGER, amount REAL)")
    con.execute("INSERT INTO invoices VALUES (1, 9.5)")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(CacheError, match=r"other\.db is an SQLite database of another application \(tables: invoices\)"):
        AnswerCache(path)
    assert path.read_bytes() == before


def test_refuses_another_schema_version(tmp_path):
    path = tmp_path / "c.sqlite"
    AnswerCache(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(CacheError, match="schema version '99'"):
        AnswerCache(path)


def test_refuses_a_corrupted_cache(tmp_path):
    path = tmp_path / "c.sqlite"
    with AnswerCache(path) as cache:
        for i in range(200):
            cache.put(f"key{i}", _reply(i), backend="fake", estimator="logprobs")
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page: len(data)] = b"\xde\xad\xbe\xef" * ((len(data) - 2 * page) // 4)  # header page intact
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(CacheError, match=r"c\.sqlite is (damaged|unreadable)"):
        AnswerCache(path)
    assert path.read_bytes() == before


def test_empty_file_becomes_a_cache_and_directory_is_refused(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with AnswerCache(empty) as cache:
        assert len(cache) == 0
    with pytest.raises(CacheError, match="is a directory"):
        AnswerCache(tmp_path)


def _writer(path, worker, n):
    with AnswerCache(path) as cache:
        for i in range(n):
            cache.put(f"w{worker}-{i}", _reply(i), backend="fake", estimator="logprobs")
            cache.put(f"shared-{i}", _reply(i), backend="fake", estimator="logprobs")  # races on the same keys


def test_concurrent_writer_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with AnswerCache(path) as cache:
        assert len(cache) == 4 * 40 + 40
        assert cache._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_refuses_a_foreign_meta_table(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (name TEXT, size INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(CacheError, match="another application"):
        AnswerCache(path)


def test_new_files_get_large_pages_and_old_4k_files_still_work(tmp_path):
    from vpersona.llm.cache import PAGE_SIZE
    with AnswerCache(tmp_path / "new.sqlite") as cache:
        assert cache._conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16384
        cache.put("k", _reply(1), backend="fake", estimator="logprobs")
    old = tmp_path / "old.sqlite"  # a cache made before: SQLite's default 4 KB pages, rows by the old writer
    conn = sqlite3.connect(old)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("PRAGMA journal_mode=WAL")
    from vpersona.llm.cache import APPLICATION, SCHEMA, SCHEMA_VERSION
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO meta VALUES ('application', ?), ('schema_version', ?)", (APPLICATION, SCHEMA_VERSION))
    import json
    conn.execute("INSERT INTO answers VALUES ('k0', 'fake', NULL, 'logprobs', ?, NULL, 1, 1, 'then')",
                 (json.dumps({"texts": ["A"], "top_logprobs": {"A": -0.5}, "usage": {}, "raw": None}),))
    conn.commit()
    conn.close()
    with AnswerCache(old) as cache:
        assert cache._conn.execute("PRAGMA page_size").fetchone()[0] == 4096  # left as it was
        assert cache.get("k0").top_logprobs == {"A": -0.5}
        cache.put_many([("k1", _reply(2), {"dist": [0.5, None]})], backend="fake", estimator="logprobs")
        assert cache.get("k1").texts == ["A2"] and len(cache) == 2


def test_replies_round_trip_exactly_whatever_json_writes_them(tmp_path):
    import math
    import numpy as np
    odd = [Reply(texts=["A"], top_logprobs={"A": -math.inf, "B": -1e-300, "C": -0.1 + 1e-17}, raw={"x": math.nan}),
           Reply(texts=["é€"], top_logprobs={"A": -0.5}, raw={"n": None, "np": np.float64(0.25), "big": 2 ** 70}),
           Reply(texts=["B"], top_logprobs={"A": -0.3, " B": -1.3}, raw={"id": "x"})]
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([(f"k{i}", r, None) for i, r in enumerate(odd)], backend="fake", estimator="logprobs")
        back = cache.get_many([f"k{i}" for i in range(len(odd))])
    got = back["k0"]
    assert got.top_logprobs["A"] == -math.inf and got.top_logprobs["B"] == -1e-300 and math.isnan(got.raw["x"])
    assert back["k1"].texts == ["é€"] and back["k1"].raw == {"n": None, "np": 0.25, "big": 2 ** 70}
    assert back["k2"].top_logprobs == odd[2].top_logprobs


def test_bulk_json_insert_stores_what_executemany_stores(tmp_path):
    import math
    items = [(f"k{i}", _reply(i), None if i % 2 else {"dist": [0.25, None], "flags": ["a\"b\\c"]}) for i in range(50)]
    items.append(("nan", Reply(texts=["x\n\ty"], top_logprobs={"A": -math.inf}, raw={"n": math.nan}), None))
    items.append(("k1", _reply(99), None))  # a key twice in one group: the first is kept
    stored = []
    for bulk in (True, False):
        with AnswerCache(tmp_path / f"{bulk}.sqlite") as cache:
            assert cache._json_rows  # this SQLite has JSON functions: the bulk path is what runs
            cache._json_rows = bulk
            cache.put_many(items, backend="fake", estimator="logprobs", model=None)
            stored.append(cache._conn.execute("SELECT key, backend, model, estimator, reply, answer, prompt_tokens, "
                                              "completion_tokens, typeof(model), typeof(answer) FROM answers "
                                              "ORDER BY key").fetchall())
            assert cache.stats.calls == len(items) and cache.get("k1").texts == ["A1"]
    assert stored[0] == stored[1] and len(stored[0]) == 51
