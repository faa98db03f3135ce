"""The worker: the background loops, composed (as app/main.py composes the API).

Every worker process (and `serve` unless --no-worker) runs the shared loops:
- failed-event retries (app/webhooks/retry.py), rows claimed with SKIP LOCKED;
- body retention (app/webhooks/retention.py), one worker at a time;
- change retention (app/changes/retention.py), one worker at a time;
- membership copies confirmed (app/groups/copies.py), so rosters skip `meters`;
and in API mode:
- enrichment jobs (app/sync/enrichment.py), claimed with SKIP LOCKED;
- scheduled reconciliation (app/sync/leader.py), by the one leader across replicas;
- the dispatch backstop (app/dispatch/backstop.py): Leap's dispatch searches polled for
  notifications we missed, one worker at a time.

On stop (SIGTERM), work in hand gets SHUTDOWN_GRACE_S to finish: jobs complete, a run
stores its current page. What is still going then is cancelled: its jobs go back to the
queue, and the run keeps its stored progress (status `running`), which the next leader
resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import metrics
from app.changes.retention import IDLE_S as CHANGE_RETENTION_IDLE_S
from app.changes.retention import ChangeRetention
from app.config import ApiMode, Settings
from app.db import is_unavailable
from app.dispatch.backstop import DispatchBackstop
from app.dispatch.service import REAPPLIERS as DISPATCH_REAPPLIERS
from app.groups import copies as membership_copies
from app.leap.client import LeapClient
from app.leap.dispatch_client import DispatchClient
from app.outage import outage
from app.sync.enrichment import Enrichment
from app.sync.leader import Leader
from app.webhooks.retention import IDLE_S as RETENTION_IDLE_S
from app.webhooks.retention import BodyRetention
from app.webhooks.retry import retry_due
from app.webhooks.service import ApplyOptions

log = logging.getLogger("meter_sync.worker")

IDLE_POLL_S = 0.5
RETRY_POLL_S = 2.0
# The backstop paces itself (every few minutes); this is how often it is asked.
DISPATCH_POLL_S = 5.0
SHUTDOWN_GRACE_S = 10.0

Step = Callable[[], Awaitable[int]]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        *,
        client: LeapClient | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self._closing: list[LeapClient] = []
        self.name = name or worker_name()
        self.api_mode = settings.api_mode == ApiMode.API
        self._client = client
        self.shutdown_grace_s = SHUTDOWN_GRACE_S
        self.retention = BodyRetention(sessions, settings.event_retention_days)
        self.change_retention = ChangeRetention(sessions, settings.change_retention_days)
        self.enrichment = Enrichment(sessions, self.client, self.name, settings.market_timezones)
        self.leader = Leader(settings, engine, sessions, self.client)

    @property
    def is_leader(self) -> bool:
        return self.leader.is_leader

    def dispatch_backstop(self) -> DispatchBackstop:
        """Polls Leap's dispatch searches now and then, for notifications we missed."""
        assert self.settings.leap_api_key is not None
        client = DispatchClient(
            self.settings.leap_api_base_url,
            self.settings.leap_api_key.get_secret_value(),
            on_call=metrics.leap_call,
        )
        self._closing.append(client)
        return DispatchBackstop(
            self.engine, self.sessions, client, zones=self.settings.market_timezones
        )

    def client(self) -> LeapClient:
        if self._client is None:
            assert self.settings.leap_api_key is not None
            self._client = LeapClient(
                self.settings.leap_api_base_url,
                self.settings.leap_api_key.get_secret_value(),
                on_call=metrics.leap_call,
            )
        return self._client

    async def retry_failed_events(self) -> int:
        return await retry_due(self.sessions, ApplyOptions.of(self.settings, DISPATCH_REAPPLIERS))

    async def confirm_membership_copies(self) -> int:
        return await membership_copies.confirm_round(self.engine)

    async def run(self, stop: asyncio.Event) -> None:
        loops = [
            _forever(self.retry_failed_events, stop, RETRY_POLL_S),
            _forever(self.retention.prune_batch, stop, RETENTION_IDLE_S),
            _forever(self.change_retention.prune_changes, stop, CHANGE_RETENTION_IDLE_S),
            _forever(self.confirm_membership_copies, stop, IDLE_POLL_S),
        ]
        if self.api_mode:
            loops += [
                _forever(self.enrichment.process_jobs, stop, IDLE_POLL_S),
                self.leader.lead(stop),
                _forever(self.dispatch_backstop().step, stop, DISPATCH_POLL_S),
            ]
        else:
            log.info("webhook-only mode: no enrichment and no reconciliation (no LEAP_API_KEY)")
        tasks = [asyncio.ensure_future(loop) for loop in loops]
        try:
            await stop.wait()
            # The loops end after their current step; whatever still runs after the grace
            # period is cancelled (see the module docstring for what happens to it).
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace_s)
            if pending:
                log.warning("worker stopping: cancelling work still in progress")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self.enrichment.release()
            except Exception as exc:
                if not is_unavailable(exc):  # an outage was already said (app/outage.py)
                    log.warning("could not release running jobs", extra={"error": repr(exc)})
            for opened in [self._client, *self._closing]:
                if opened is not None:
                    await opened.aclose()
            log.info("worker stopped")


async def _forever(step: Step, stop: asyncio.Event, idle_s: float) -> None:
    """Call `step` until stopped; sleep when it had nothing to do or failed."""
    while not stop.is_set():
        try:
            busy = await step()
            outage.up()
        except Exception as exc:
            if is_unavailable(exc):
                outage.failed(exc)  # one line per outage, not one per turn
            else:
                log.exception("worker step failed", extra={"step": step.__name__})
            busy = 0
        if not busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle_s)
