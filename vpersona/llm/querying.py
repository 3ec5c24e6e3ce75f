"""Sending a grid's queries: at most ``concurrency`` in flight, replies parsed once and committed
to the answer cache in groups (one SQLite transaction per ``FLUSH_ROWS`` replies, and at most
``FLUSH_SECONDS`` after a reply arrives), written by a background thread so that a commit does
not stall the event loop, and with it every request in flight (SQLite releases the GIL while it
writes). A run killed at any point loses only the replies of its last ``FLUSH_SECONDS`` and of
the write under way; the next run asks just those again.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import time
from concurrent.futures import Future, ThreadPoolExecutor

from vpersona.llm.backends.base import Backend, Reply
from vpersona.llm.cache import HEARTBEAT_SECONDS, AnswerCache
from vpersona.llm.estimators import Answer, Estimator

FLUSH_ROWS = 32_768      # cache commit group: at most this many replies...
FLUSH_SECONDS = 0.5      # ...or this much time between a reply's arrival and its commit
# Why large groups: cache keys are hashes, so every insert dirties a random page of the key index
# and each commit rewrites all the pages it dirtied; at 10^6 answers a reply costs 2.6x more in
# 1k-row commits than in 16k-row ones (vpersona.llm.cache, benchmarks/bench_cache.py).


class Committer:
    """Cache writes in groups (one SQLite transaction per ``FLUSH_ROWS`` replies or
    ``FLUSH_SECONDS``), one group at a time in a background thread; ``wait()`` returns when all
    submitted groups are committed, ``close()`` writes the rest and waits. A failed write is
    raised by the next ``flush``, ``wait`` or ``close``."""

    def __init__(self, cache: AnswerCache | None, backend: Backend, est: Estimator):
        self.cache, self.kind, self.est = cache, backend.kind, est
        self.model = backend.identity().get("model")
        self.pending: list[tuple] = []
        self.last = time.monotonic()
        self._writer = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="vpersona-cache")
                        if cache is not None else None)
        self._writing: Future | None = None

    def add(self, key: str, reply: Reply, answer: Answer) -> None:
        if self.cache is None:
            return
        self.pending.append((key, reply, answer.to_json()))
        if len(self.pending) >= FLUSH_ROWS or time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        if self.pending:
            rows, self.pending = self.pending, []
            self.wait()  # one group at a time, in arrival order (and the previous one's error first)
            self._writing = self._writer.submit(self.cache.put_many, rows, backend=self.kind,
                                                estimator=self.est.name, model=self.model)

    def wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def close(self) -> None:
        """Write what is pending and wait for it (also after a failed query: replies are paid)."""
        try:
            self.flush()
            self.wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)

    async def every(self, seconds: float) -> None:
        beat = time.monotonic()
        while True:
            await asyncio.sleep(seconds)
            self.flush()
            if time.monotonic() - beat >= HEARTBEAT_SECONDS:  # renew this run's claims on the keys it asks
                beat = time.monotonic()
                self._writer.submit(self.cache.heartbeat)

    def release_claims(self) -> None:
        """Drop the run's claims once the replies submitted so far are committed (in the writer
        thread, after them: the event loop does not wait)."""
        if self.cache is None:
            return
        self.flush()
        before = self._writing

        def release():
            if before is not None:
                before.result()  # done already: the writer runs one job at a time, in order
            self.cache.release()
        self._writing = self._writer.submit(release)


async def ask_all(todo: list, backend: Backend, committer: Committer, est: Estimator, concurrency: int,
                  replies: dict[str, Reply], answers: dict[str, Answer], stats, on_reply=None) -> None:
    """Send ``todo`` in order with at most ``concurrency`` in flight; store each reply (committed
    within ``FLUSH_SECONDS``; the last ones are submitted for writing on return, see
    :meth:`Committer.wait`) and call ``on_reply()`` after each (progress). On a failure no new
    query starts, the ones in flight finish (and are cached), then it raises."""
    queue = iter(todo)
    failures: list[BaseException] = []

    async def worker():
        for req in queue:  # the shared iterator hands out queries in order
            if failures:
                return
            try:
                reply = await backend.acomplete(req.query)
            except BaseException as e:  # noqa: BLE001 - re-raised below after the others stop
                failures.append(e)
                return
            replies[req.key] = reply
            answers[req.key] = answer = est.parse(reply, req.prompt)  # what the cache keeps
            stats.calls += 1
            usage = reply.usage
            stats.prompt_tokens += int(usage.get("prompt_tokens", 0))
            stats.completion_tokens += int(usage.get("completion_tokens", 0))
            committer.add(req.key, reply, answer)
            if on_reply is not None:
                on_reply()

    ticker = asyncio.ensure_future(committer.every(FLUSH_SECONDS))
    try:
        await asyncio.gather(*(worker() for _ in range(max(1, int(concurrency)))))
    finally:
        ticker.cancel()
        committer.flush()
    if failures:
        raise failures[0]


def run_coroutine(coro):
    """``asyncio.run`` that also works where a loop is already running (Jupyter, papermill)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
