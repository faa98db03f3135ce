"""Waking waiting readers: one watcher per process, shared by all of them.

While anyone waits, the watcher reads the feed's readable end every POLL_S on its own
connection and wakes every waiter when it moves. Not LISTEN/NOTIFY: a NOTIFY takes a
server-wide lock from before commit to after it, so committing writers queue behind one
another's WAL flush; measured, it halved webhook ingest (docs/benchmarks.md). A poll per
process costs writers nothing. Waiters only learn "look again": what they may read is
decided by the horizon in SQL, so a late wake-up costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from app.changes.repository import TAIL_SQL
from app.db import plain_dsn

log = logging.getLogger("meter_sync.changes")

POLL_S = 0.02
CONNECT_TIMEOUT_S = 2.0
RETRY_CONNECT_S = 5.0
# The watcher stops this long after its last waiter left (and restarts on demand).
IDLE_STOP_S = 30.0


class ChangeSignal:
    def __init__(self, database_url: str) -> None:
        self._dsn = plain_dsn(database_url)
        self._generation = 0
        self._changed = asyncio.Event()  # set, then replaced, at each move of the end
        self._waiters = 0
        self._watcher: asyncio.Task[None] | None = None

    def generation(self) -> int:
        """Taken before reading: a wait then returns at once if a change came meanwhile."""
        return self._generation

    @property
    def watching(self) -> bool:
        return self._watcher is not None and not self._watcher.done()

    def _moved(self) -> None:
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, seen: int, within_s: float) -> bool:
        """Until the readable end moves after `seen` was taken, or `within_s`; whether
        it moved."""
        if not self.watching:
            self._watcher = asyncio.create_task(self._watch())
        if self._generation != seen:
            return True
        changed = self._changed
        self._waiters += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), within_s)
        finally:
            self._waiters -= 1
        return self._generation != seen

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        last: object = None
        conn: asyncpg.Connection | None = None
        try:
            while self._waiters or loop.time() - idle_since < IDLE_STOP_S:
                if self._waiters:
                    idle_since = loop.time()
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
                    tail = tuple(await conn.fetchrow(TAIL_SQL) or ())
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    # Waiters still look by themselves (queries.FALLBACK_POLL_S).
                    log.warning("change feed watcher: database error", extra={"error": repr(exc)})
                    await asyncio.sleep(RETRY_CONNECT_S)
                    continue
                if tail != last:
                    last = tail
                    self._moved()
                await asyncio.sleep(POLL_S)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    async def close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
