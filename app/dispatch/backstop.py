"""API mode: poll Leap's dispatch searches as a backstop for missed notifications.

Covers yesterday to two days ahead (UTC days), in windows of at most 31 days (Leap's
limit), every page; what is found is upserted exactly like a notification (source
`search`), drift included. One worker polls at a time (a PostgreSQL advisory lock).

Wiring (API mode only): `DispatchBackstop(settings, engine, sessions, client).step` is a
worker step for `Worker._forever(step, stop, idle_s)`; it polls at most every
`interval_s` seconds and returns the number of timeslots it wrote.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import locks
from app.dispatch import service
from app.leap.dispatch import (
    MAX_SEARCH_DAYS,
    DispatchSearchRequest,
    GroupDispatchNotification,
    GroupDispatchSearchPage,
    MeterDispatchNotification,
)
from app.leap.dispatch_client import DispatchClient, Kind

log = logging.getLogger("meter_sync.dispatch")

DEFAULT_INTERVAL_S = 300.0
_KINDS: tuple[Kind, ...] = ("group", "meter")


def poll_windows(now: datetime) -> list[tuple[datetime, datetime]]:
    """Yesterday 00:00 UTC to the end of the day after tomorrow, cut in <= 31-day pieces."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=1), today + timedelta(days=3)
    windows = []
    while start < end:
        piece_end = min(start + timedelta(days=MAX_SEARCH_DAYS), end)
        windows.append((start, piece_end))
        start = piece_end
    return windows


async def poll_once(
    sessions: async_sessionmaker[AsyncSession],
    client: DispatchClient,
    *,
    zones: Mapping[str, str],
    refresh: bool = True,
    now: datetime | None = None,
) -> int:
    """Walk both searches over the window; returns how many timeslots were upserted."""
    written = 0
    for start, end in poll_windows(now or datetime.now(UTC)):
        for kind in _KINDS:
            request = DispatchSearchRequest(
                start_date=start, end_date=end, exclude_real_time_events=False
            )
            async for page in client.iter_dispatch_pages(kind, request):
                if not page.results:
                    continue
                note: GroupDispatchNotification | MeterDispatchNotification
                if isinstance(page, GroupDispatchSearchPage):
                    note = GroupDispatchNotification(group_dispatches=page.results)
                else:
                    note = MeterDispatchNotification(meter_dispatches=page.results)
                async with sessions() as session:
                    applied = await service.apply_notification(
                        session,
                        note,
                        webhook_event_id=None,
                        refresh=refresh,
                        zones=zones,
                        source="search",
                    )
                    await session.commit()
                service.report(applied)
                written += len(applied.dispatch_ids)
    return written


class DispatchBackstop:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        client: DispatchClient,
        *,
        zones: Mapping[str, str],
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.client = client
        self.zones = zones
        self.interval_s = interval_s
        self._next = 0.0

    async def step(self) -> int:
        """Poll when due and no other worker is polling; 0 when nothing was done."""
        if time.monotonic() < self._next:
            return 0
        self._next = time.monotonic() + self.interval_s
        async with self.engine.connect() as conn:
            if not await locks.try_session_lock(conn, locks.DISPATCH_POLL):
                return 0
            try:
                written = await poll_once(self.sessions, self.client, zones=self.zones)
            finally:
                await locks.unlock_session(conn, locks.DISPATCH_POLL)
        if written:
            log.info("dispatch backstop poll", extra={"timeslots": written})
        return 0  # the step's own interval paces it, not the worker's idle sleep
