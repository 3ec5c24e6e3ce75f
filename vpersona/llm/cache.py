"""The answer cache: an SQLite file of LLM replies keyed by everything that changes an answer.

Keys come from :func:`vpersona.llm.backends.base.cache_key` (backend identity, messages, estimator,
generation parameters, replicate index). Each row keeps the raw reply (JSON), the parsed answer,
token usage and a timestamp. ``put`` commits one answer at once, ``put_many`` a group in one
transaction (the grid commits its replies in groups, see :mod:`vpersona.llm.querying`), in WAL
mode: a run killed at any point (even ``kill -9``) keeps all answers committed so far, and several
processes can write at once (SQLite's locking; writers wait up to ``timeout`` s).

A file that is not SQLite, damaged (``PRAGMA quick_check``) or another application's is refused.

Shared by concurrent runs, a cache never pays twice for a prompt: before asking, a run *claims*
the keys it lacks (:meth:`AnswerCache.claim`, one SQLite transaction: a key claimed by another
live run is left to it), asks only its own, then takes the others' answers from the cache as they
arrive. A claim is a lease (renewed by :meth:`AnswerCache.heartbeat`): a run silent for
``LEASE_SECONDS``, or whose process on this host is gone, loses its claims to whoever asks next.

A cache the run may read but not write (a read-only mount, a file or folder without write
permission) is opened read-only (``readonly``): it serves every answer it holds, and a grid that
needs one it lacks stops before any call. A write that fails (no space, read-only) raises
:class:`CacheError` naming the file and the cause.
"""
from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from vpersona.core.json_text import dumps, loads, rows_json
from vpersona.core.liveness import owner_is_gone
from vpersona.llm.backends.base import Reply

APPLICATION = "vpersona-answer-cache"
SCHEMA_VERSION = "1"
SQLITE_HEADER = b"SQLite format 3\x00"
# Keys are SHA-256 hashes, so each insert lands on a random page of the key index, and a commit
# writes every page it dirtied. Large pages (new files only; SQLite's default is 4 KB) make the
# index shallower and a commit's pages fewer: storing 10^6 replies costs 21.0 µs each with 16 KB
# pages and 16k-row commits, 27.2 with 4 KB pages, 40.8 with 4 KB pages and 1k-row commits
# (`python benchmarks/bench_cache.py --n 1000000`, one run; the grid's writer thread does this
# beside the event loop).
PAGE_SIZE = 16384
INSERT_JSON_ROWS = """INSERT OR IGNORE INTO answers
SELECT json_extract(value, '$[0]'), ?1, ?2, ?3, json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), ?4
FROM json_each(?5)"""
WAL_AUTOCHECKPOINT = 4000  # pages (64 MB of WAL at 16 KB pages) between checkpoints
# A run renews its claims every HEARTBEAT_SECONDS; claims of a run silent for LEASE_SECONDS (killed,
# crashed) are taken over by the next run that needs those keys.
LEASE_SECONDS = 30.0
HEARTBEAT_SECONDS = 5.0
CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claimants (owner TEXT PRIMARY KEY, heartbeat REAL NOT NULL);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL) WITHOUT ROWID;
"""
CLAIM_FREE_KEYS = """INSERT OR IGNORE INTO claims
SELECT value, ?1 FROM json_each(?2) WHERE value NOT IN (SELECT key FROM answers)"""
# not claimed by this run: another run's claim, or no claim because the key was answered meanwhile
TAKEN_KEYS = """SELECT j.value FROM json_each(?2) AS j LEFT JOIN claims AS c ON c.key = j.value
WHERE c.owner IS NOT ?1"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    key               TEXT PRIMARY KEY,  -- base.cache_key(...)
    backend           TEXT NOT NULL,     -- backend kind
    model             TEXT,
    estimator         TEXT NOT NULL,
    reply             TEXT NOT NULL,     -- JSON: texts, top_logprobs, usage, raw
    answer            TEXT,              -- JSON: parsed answer (dist in catalog order, flags...)
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at        TEXT NOT NULL      -- UTC ISO 8601
);
"""


class CacheError(RuntimeError):
    """The cache file cannot be used (not SQLite, damaged, foreign, or of another schema version)."""


@dataclass
class CacheStats:
    """Counters for this cache object: lookups that hit/missed, answers stored (= backend calls
    made through it) and their token usage."""

    hits: int = 0
    misses: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def reply_to_json(reply: Reply) -> str:
    return dumps({"texts": reply.texts, "top_logprobs": reply.top_logprobs, "usage": reply.usage, "raw": reply.raw})


def reply_from_json(blob: str) -> Reply:
    d = loads(blob)
    return Reply(texts=d["texts"], top_logprobs=d["top_logprobs"], usage=d.get("usage") or {}, raw=d.get("raw"))


class AnswerCache:
    """SQLite answer cache at ``path`` (created if absent). Use as a context manager or ``close()``."""

    def __init__(self, path: str | Path, timeout: float = 60.0, *, readonly: bool | None = None,
                 shared: bool = True):
        """``readonly``: None opens read-only only a file the process may not write (or whose
        folder it may not write); True always. ``shared``: claim keys before asking (other runs
        may use the file at the same time); False for a private scratch file."""
        self.path = Path(path)
        self.stats = CacheStats()
        self._lock = threading.Lock()
        _refuse_non_sqlite(self.path)
        self.readonly = _unwritable(self.path) if readonly is None else (readonly and self.path.exists())
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._claims = shared and not self.readonly
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(self.path, timeout, self.readonly)
        self._json_rows = _has_json(self._conn)
        self._claims = self._claims and self._json_rows
        try:
            self._check_integrity()
            if self.readonly:
                self._check_ours(self._tables())
                return
            for attempt in range(100):  # two runs setting up a new file at once: "locked" without a busy wait
                try:
                    self._prepare()
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or attempt == 99:
                        raise
                    time.sleep(0.05)
        except CacheError:
            self._conn.close()
            raise
        except sqlite3.OperationalError as e:  # e.g. "database or disk is full", "readonly database"
            self._conn.close()
            raise CacheError(f"cannot write the answer cache {self.path}: {e}") from None
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise CacheError(f"cache file {self.path} is unreadable as SQLite ({e}); expected a vpersona answer "
                             f"cache. It was left untouched: move it away or choose another cache path") from None

    # -- opening ----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        self._init_or_check_schema()
        # WAL + NORMAL: commits survive a killed process; 64 MB of pages: random keys touch the whole index
        self._conn.executescript(f"PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; "
                                 f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT};")
        if self._claims:
            self._conn.executescript(CLAIMS_SCHEMA)  # added to caches made before claims existed

    def _check_integrity(self) -> None:
        result = [r[0] for r in self._conn.execute("PRAGMA quick_check").fetchall()]
        if result != ["ok"]:
            raise CacheError(f"cache file {self.path} is damaged (PRAGMA quick_check: {'; '.join(result[:5])}). "
                             f"It was left untouched: move it away or choose another cache path")

    def _tables(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _init_or_check_schema(self) -> None:
        """Check a non-empty file is ours before changing anything in it; initialise an empty one."""
        tables = self._tables()
        if tables:
            self._check_ours(tables)
        else:  # a new file: its page size is fixed by the first write (the journal mode's)
            self._conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        if tables:
            return
        self._conn.execute("BEGIN IMMEDIATE")  # one process initialises; the others wait, then check
        try:
            tables = self._tables()
            if not tables:
                for stmt in SCHEMA.strip().split(";"):
                    if stmt.strip():
                        self._conn.execute(stmt)
                self._conn.execute("INSERT INTO meta VALUES ('application', ?), ('schema_version', ?), ('created_at', ?)",
                                   (APPLICATION, SCHEMA_VERSION, _now()))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        if tables:
            self._check_ours(tables)

    def _check_ours(self, tables: set[str]) -> None:
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        except sqlite3.DatabaseError:  # a `meta` table of another shape
            meta = {}
        if meta.get("application") != APPLICATION:
            raise CacheError(f"{self.path} is an SQLite database of another application (tables: "
                             f"{', '.join(sorted(tables))}); expected a vpersona answer cache. It was left "
                             f"untouched: choose another cache path")
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise CacheError(f"cache file {self.path} has schema version {meta.get('schema_version')!r}; this "
                             f"vpersona expects {SCHEMA_VERSION!r}. Use a new cache path")

    # -- reading ----------------------------------------------------------------------------------
    def get(self, key: str) -> Reply | None:
        """The cached reply for ``key``, or None (counts a hit or a miss)."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Reply]:
        """Cached replies for those of ``keys`` that are present (counts hits and misses)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Reply] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                rows = self._conn.execute(f"SELECT key, reply FROM answers WHERE key IN ({','.join('?' * len(chunk))})",
                                          chunk).fetchall()
                found.update((k, reply_from_json(r)) for k, r in rows)
            self.stats.hits += len(found)
            self.stats.misses += len(keys) - len(found)
        return found

    def existing(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` the cache holds (no reply is read; hits and misses are not counted)."""
        keys = list(dict.fromkeys(keys))
        found: set[str] = set()
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                found.update(r[0] for r in self._conn.execute(
                    f"SELECT key FROM answers WHERE key IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM answers WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def totals(self) -> dict:
        """Rows and token totals stored in the file (all runs, all processes)."""
        with self._lock:
            n, p, c = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) FROM answers"
            ).fetchone()
        return {"answers": n, "prompt_tokens": p, "completion_tokens": c}

    # -- writing ----------------------------------------------------------------------------------
    def put(self, key: str, reply: Reply, *, backend: str, estimator: str, model: str | None = None,
            answer: dict | None = None) -> None:
        """Store one reply and commit at once. A key already present (e.g. written meanwhile by
        another process for the same query) is kept as it was."""
        usage = reply.usage or {}
        pt, ct = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        row = (key, backend, model, estimator, reply_to_json(reply),
               None if answer is None else dumps(answer), pt, ct, _now())
        with self._lock, self._writing():
            self._conn.execute("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            self.stats.calls += 1
            self.stats.prompt_tokens += pt
            self.stats.completion_tokens += ct

    def put_many(self, items: Iterable[tuple[str, Reply, dict | None]], *, backend: str, estimator: str,
                 model: str | None = None) -> None:
        """Store ``(key, reply, answer)`` triples in one transaction (one commit for all: what
        makes a fast backend's replies cheap to keep). Keys already present are kept as they were.
        The rows go to SQLite as one JSON array in one statement (``json_each``), so SQLite does
        the whole insert without taking the GIL back row by row (what lets the grid's writer
        thread run beside the event loop); an SQLite without JSON functions gets ``executemany``."""
        rows, pt_sum, ct_sum = [], 0, 0
        for key, reply, answer in items:
            usage = reply.usage or {}
            pt, ct = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
            rows.append((key, reply_to_json(reply), None if answer is None else dumps(answer), pt, ct))
            pt_sum, ct_sum = pt_sum + pt, ct_sum + ct
        bulk = rows_json(rows) if self._json_rows else None
        now = _now()
        with self._lock, self._transaction():
            if bulk is not None:  # one statement: SQLite does the whole insert without the GIL
                self._conn.execute(INSERT_JSON_ROWS, (backend, model, estimator, now, bulk))
            else:
                self._conn.executemany("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                       [(k, backend, model, estimator, r, a, pt, ct, now) for k, r, a, pt, ct in rows])
        with self._lock:
            self.stats.calls += len(rows)
            self.stats.prompt_tokens += pt_sum
            self.stats.completion_tokens += ct_sum

    @contextmanager
    def _writing(self):
        """A failed write as one :class:`CacheError` naming the file and the cause."""
        if self.readonly:
            raise CacheError(f"the answer cache {self.path} is read-only here: it cannot store new answers")
        try:
            yield
        except sqlite3.OperationalError as e:  # "database or disk is full", "attempt to write a readonly database"
            raise CacheError(f"cannot write the answer cache {self.path}: {e}") from None

    @contextmanager
    def _transaction(self):
        with self._writing():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    # -- sharing with concurrent runs ----------------------------------------------------------------
    def claim(self, keys: Iterable[str]) -> set[str]:
        """Claim ``keys`` for this run; return those it must *not* ask: answered meanwhile or
        claimed by another live run (whose answers it then waits for, see :meth:`await_answers`).
        Claims of runs silent for ``LEASE_SECONDS`` are taken over. A read-only or private cache
        claims nothing (returns an empty set)."""
        keys = list(dict.fromkeys(keys))
        if not self._claims or not keys:
            return set()
        now, blob = time.time(), dumps(keys)
        with self._lock, self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO claimants VALUES (?, ?)", (self.owner, now))
            stale = [r[0] for r in self._conn.execute("SELECT owner, heartbeat FROM claimants")
                     if r[1] < now - LEASE_SECONDS or owner_is_gone(r[0])]
            for owner in stale:
                self._conn.execute("DELETE FROM claims WHERE owner = ?", (owner,))
                self._conn.execute("DELETE FROM claimants WHERE owner = ?", (owner,))
            self._conn.execute(CLAIM_FREE_KEYS, (self.owner, blob))
            return {r[0] for r in self._conn.execute(TAKEN_KEYS, (self.owner, blob))}

    def heartbeat(self) -> None:
        """Renew this run's claims (every ``HEARTBEAT_SECONDS`` while it asks)."""
        if self._claims:
            with self._lock, self._transaction():
                self._conn.execute("UPDATE claimants SET heartbeat = ? WHERE owner = ?", (time.time(), self.owner))

    def release(self) -> None:
        """Drop this run's claims (its answers are committed, or it gives up)."""
        if self._claims:
            with self._lock, self._transaction():
                self._conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
                self._conn.execute("DELETE FROM claimants WHERE owner = ?", (self.owner,))

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "AnswerCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AnswerCache({str(self.path)!r})"


def _refuse_non_sqlite(path: Path) -> None:
    if not path.exists():
        return
    if path.is_dir():
        raise CacheError(f"cache path {path} is a directory; expected an SQLite file path")
    if os.path.getsize(path) == 0:
        return  # an empty file is an empty SQLite database: nothing to overwrite
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise CacheError(f"cache file {path} is not an SQLite database (header {header[:16]!r}); expected a "
                         f"vpersona answer cache. It was left untouched: move it away or choose another cache path")


def _unwritable(path: Path) -> bool:
    """An existing cache this process may read but not write (file or folder: SQLite writes its
    journal beside the file)."""
    return path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def _connect(path: Path, timeout: float, readonly: bool) -> sqlite3.Connection:
    if not readonly:
        return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:  # WAL mode needs a -shm file it cannot create in a read-only folder:
        conn.close()  # nobody can write the file there either, so it is immutable while we read it
        return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout, isolation_level=None,
                               check_same_thread=False)


def _has_json(conn: sqlite3.Connection) -> bool:
    try:
        return conn.execute("SELECT json_extract('[1]', '$[0]')").fetchone()[0] == 1
    except sqlite3.OperationalError:  # an SQLite built without its JSON functions
        return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def resolve_cache_path(cache_path: str | Path, run_dir: str | Path) -> Path:
    """A run's ``CACHE_PATH``: ``"auto"`` is ``llm_cache.sqlite`` beside the run folders (shared by
    every run under the same outputs folder), anything else a path."""
    return Path(run_dir).parent / "llm_cache.sqlite" if cache_path == "auto" else Path(cache_path)
