"""Waking waiting readers: one LISTEN connection per process, shared by all of them.

The `changes` table's trigger NOTIFYs at every insert; PostgreSQL delivers it when (and
only if) the writing transaction commits, to every listening replica. Waiters here only
learn "look again": what they may read is always decided by the horizon in SQL, so a
lost or early notification costs latency, never correctness. Without a connection (it
failed, or the server closed it) waiters fall back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from app.changes.repository import CHANNEL
from app.db import plain_dsn

log = logging.getLogger("meter_sync.changes")

CONNECT_TIMEOUT_S = 2.0
RETRY_CONNECT_S = 5.0


class ChangeSignal:
    def __init__(self, database_url: str) -> None:
        self._dsn = plain_dsn(database_url)
        self._generation = 0
        self._changed = asyncio.Event()  # set, then replaced, at each notification
        self._conn: asyncpg.Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._next_attempt = 0.0

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def _notified(self, *_: object) -> None:
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _listen(self) -> None:
        """Open the LISTEN connection on first use (and again after a failure)."""
        if self.listening:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_attempt:
            return
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.listening:
                return
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
                await conn.add_listener(CHANNEL, self._notified)
                conn.add_termination_listener(lambda _: self._lost())
                self._conn = conn
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                self._next_attempt = loop.time() + RETRY_CONNECT_S
                log.warning("change feed: cannot listen, polling", extra={"error": repr(exc)})

    def _lost(self) -> None:
        self._conn = None
        self._notified()  # whoever waits looks again (a notification may be lost)

    def generation(self) -> int:
        """Taken before reading: a wait then returns at once if a change came meanwhile."""
        return self._generation

    async def wait(self, seen: int, within_s: float) -> bool:
        """Until a notification newer than `seen`, or `within_s`; whether one came."""
        await self._listen()
        if self._generation != seen:
            return True
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), within_s)
        return self._generation != seen

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
