"""Scheduled and requested reconciliation runs, done by one worker across all replicas.

The leader is the worker holding a PostgreSQL advisory lock on a connection it keeps
open. If that process dies, its connection closes, the lock is released and another
worker takes over (and resumes the interrupted run from its stored progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app import locks, metrics
from app.clock import utc_now
from app.config import Settings
from app.db import is_unavailable
from app.leap.client import LeapClient
from app.leap.errors import LeapAuthError
from app.models import RunMode, RunStatus
from app.outage import outage
from app.sync import runs

log = logging.getLogger("meter_sync.worker")

POLL_S = 2.0


class Leader:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        client: Callable[[], LeapClient],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.client = client
        self.is_leader = False
        self._said_leader = False

    async def lead(self, stop: asyncio.Event) -> None:
        """Try for leadership until stopped; while leading, run what is due."""
        while not stop.is_set():
            try:
                async with self.engine.connect() as conn:
                    if await locks.try_session_lock(conn, locks.LEADER):
                        self.is_leader = True
                        if not self._said_leader:  # not again after each outage turn
                            log.info("this worker leads scheduled reconciliation")
                            self._said_leader = True
                        try:
                            await self._schedule(conn, stop)
                        finally:
                            self.is_leader = False
                            # The lock belongs to this session: never hand it back to the
                            # pool still locked. Closing the connection releases it.
                            await conn.invalidate()
                    else:
                        self._said_leader = False  # another worker leads now
            except Exception as exc:
                if is_unavailable(exc):
                    outage.failed(exc)
                else:
                    log.exception("leader loop failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)

    async def _schedule(self, conn: AsyncConnection, stop: asyncio.Event) -> None:
        delta_every = timedelta(seconds=self.settings.sync_interval_seconds)
        full_every = timedelta(seconds=self.settings.full_sync_interval_seconds)
        while not stop.is_set():
            # The lock lives on this connection: if it broke, leadership is gone.
            await conn.execute(text("SELECT 1"))
            await conn.commit()
            async with self.sessions() as session:
                run = await runs.next_run(session)
                if run is None:
                    mode = await runs.due_mode(session, delta_every, full_every, utc_now())
                    if mode is not None:
                        run = await runs.request_run(session, mode, "schedule")
                        await session.commit()
                run_id = run.id if run is not None else None
                run_mode = run.mode if run is not None else RunMode.DELTA
            if run_id is not None:
                await self._execute(run_id, run_mode)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)

    async def _execute(self, run_id: int, run_mode: str) -> None:
        started = time.monotonic()
        try:
            done = await runs.execute(
                self.sessions, self.client(), run_id, zones=self.settings.market_timezones
            )
        except LeapAuthError:
            metrics.sync_run_ended(run_mode, RunStatus.FAILED, time.monotonic() - started)
            log.error("reconciliation stopped: Leap refused LEAP_API_KEY")
            return
        took = (
            (done.finished_at - done.started_at).total_seconds()
            if done.finished_at and done.started_at
            else None
        )
        metrics.sync_run_ended(done.mode, done.status, took)
