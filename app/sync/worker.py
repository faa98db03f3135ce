"""The worker: enrichment jobs, retries of failed events, and scheduled reconciliation.

Every worker process (and `serve` unless --no-worker) runs the shared loops: refresh jobs
are claimed with FOR UPDATE SKIP LOCKED, failed events likewise. Scheduled and requested
reconciliation runs are done by one worker across all replicas: the one holding a
PostgreSQL advisory lock on a connection it keeps open. If that process dies, its
connection closes, the lock is released and another worker takes over (and resumes the
interrupted run from its stored progress).

Any worker also prunes webhook event bodies older than EVENT_RETENTION_DAYS (one worker
at a time, by a transaction-level advisory lock; 1000 rows per statement).

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
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app import metrics
from app.clock import utc_now
from app.config import Settings
from app.db import is_unavailable
from app.leap.client import LeapAuthError, LeapClient, LeapError
from app.sync import records, runs
from app.sync.jobs import REFRESH_METER
from app.webhooks.retry import retry_due

log = logging.getLogger("meter_sync.worker")

LEADER_LOCK_ID = 0x6D657465_72730001
JOB_BATCH = 16
JOB_MAX_ATTEMPTS = 8
# A claimed job older than this is taken back (its worker died): jobs take seconds.
STALE_JOB = timedelta(minutes=2)
IDLE_POLL_S = 0.5
LEADER_POLL_S = 2.0
SHUTDOWN_GRACE_S = 10.0
RETENTION_LOCK_ID = 0x6D657465_72730002
RETENTION_BATCH = 1000
RETENTION_IDLE_S = 600.0

_CLAIM_JOBS = text(
    """
    UPDATE jobs SET status = 'running', locked_by = :worker, locked_at = now(),
                    attempts = attempts + 1, updated_at = now()
    WHERE id IN (
        SELECT id FROM jobs
        WHERE status = 'queued' AND run_after <= now()
        ORDER BY run_after, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, kind, meter_id, attempts
    """
)
_JOB_DONE = text("DELETE FROM jobs WHERE id = :id")
# Back to the queue, unless an identical job was queued meanwhile (then this one goes).
_JOB_RETRY = text(
    """
    WITH twin AS (
        SELECT 1 FROM jobs WHERE kind = :kind AND meter_id IS NOT DISTINCT FROM :meter_id
          AND status = 'queued' AND id <> :id
    ), requeued AS (
        UPDATE jobs SET status = CASE WHEN :dead THEN 'dead' ELSE 'queued' END,
                        run_after = now() + make_interval(secs => :delay),
                        last_error = :error, locked_by = NULL, locked_at = NULL,
                        updated_at = now()
        WHERE id = :id AND (:dead OR NOT EXISTS (SELECT 1 FROM twin))
        RETURNING id
    )
    DELETE FROM jobs WHERE id = :id AND NOT EXISTS (SELECT 1 FROM requeued)
    """
)
# Jobs of a worker that died mid-job go back to the queue.
_RELEASE_STALE = text(
    """
    DELETE FROM jobs j WHERE j.status = 'running' AND j.locked_at < now() - CAST(:stale AS interval)
      AND EXISTS (SELECT 1 FROM jobs q WHERE q.status = 'queued' AND q.kind = j.kind
                  AND q.meter_id IS NOT DISTINCT FROM j.meter_id);
    """
)
_REQUEUE_STALE = text(
    """
    UPDATE jobs SET status = 'queued', locked_by = NULL, locked_at = NULL, updated_at = now()
    WHERE status = 'running' AND locked_at < now() - CAST(:stale AS interval)
    """
)
# This worker's jobs still running when it stops go back to the queue (their attempt not
# counted), or go if an identical job was queued meanwhile.
_RELEASE_MINE = (
    text(
        """
        DELETE FROM jobs j WHERE j.status = 'running' AND j.locked_by = :worker
          AND EXISTS (SELECT 1 FROM jobs q WHERE q.status = 'queued' AND q.kind = j.kind
                      AND q.meter_id IS NOT DISTINCT FROM j.meter_id)
        """
    ),
    text(
        """
        UPDATE jobs SET status = 'queued', locked_by = NULL, locked_at = NULL,
                        attempts = GREATEST(attempts - 1, 0), updated_at = now()
        WHERE status = 'running' AND locked_by = :worker
        """
    ),
)
# One retention batch: walk the inbox in `seq` order (its unique index; received_at has
# none) from where the last batch stopped, up to the first row not yet old enough, and
# drop the bodies of the old rows. Events still waiting for a retry keep theirs.
_PRUNE_BATCH = text(
    """
    WITH chunk AS (
        SELECT webhook_event_id, seq, received_at < :cutoff AS old,
               body IS NOT NULL AND status NOT IN ('failed', 'received') AS prunable
        FROM webhook_events WHERE seq > :after ORDER BY seq LIMIT :batch
    ), edge AS (
        SELECT min(seq) AS seq FROM chunk WHERE NOT old
    ), done AS (
        SELECT * FROM chunk WHERE old AND (seq < (SELECT seq FROM edge) OR NOT EXISTS (
            SELECT 1 FROM chunk WHERE NOT old))
    ), pruned AS (
        UPDATE webhook_events w SET body = NULL
        FROM done WHERE w.webhook_event_id = done.webhook_event_id AND done.prunable
        RETURNING 1
    )
    SELECT (SELECT max(seq) FROM done) AS last_seq,
           (SELECT count(*) FROM done) AS scanned,
           (SELECT count(*) FROM pruned) AS pruned,
           EXISTS (SELECT 1 FROM edge WHERE seq IS NOT NULL) AS reached_new
    """
)


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
        self.name = name or worker_name()
        self.api_mode = settings.api_mode == "api"
        self._client = client
        self.is_leader = False
        self.shutdown_grace_s = SHUTDOWN_GRACE_S
        self._prune_after = 0
        self._pruned_in_pass = 0

    def client(self) -> LeapClient:
        if self._client is None:
            assert self.settings.leap_api_key is not None
            self._client = LeapClient(
                self.settings.leap_api_base_url,
                self.settings.leap_api_key.get_secret_value(),
                on_call=metrics.leap_call,
            )
        return self._client

    async def run(self, stop: asyncio.Event) -> None:
        loops = [
            self._forever(self.retry_failed_events, stop, 2.0),
            self._forever(self.prune_event_bodies, stop, RETENTION_IDLE_S),
        ]
        if self.api_mode:
            loops += [self._forever(self.process_jobs, stop, IDLE_POLL_S), self._lead(stop)]
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
                await self.release_jobs()
            except Exception as exc:
                log.warning("could not release running jobs", extra={"error": repr(exc)})
            if self._client is not None:
                await self._client.aclose()
            log.info("worker stopped")

    async def release_jobs(self) -> None:
        """Put this worker's jobs still marked running back in the queue."""
        async with self.sessions() as session:
            for statement in _RELEASE_MINE:
                await session.execute(statement, {"worker": self.name})
            await session.commit()

    async def _forever(self, step: Any, stop: asyncio.Event, idle_s: float) -> None:
        """Call `step` until stopped; sleep when it had nothing to do or failed."""
        while not stop.is_set():
            try:
                busy = await step()
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("worker step failed", extra={"step": step.__name__})
                busy = 0
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle_s)

    async def retry_failed_events(self) -> int:
        return await retry_due(self.sessions, refresh=self.api_mode)

    # ---- retention -----------------------------------------------------------------------

    async def prune_event_bodies(self) -> int:
        """One batch of retention; nonzero while there is more to do right away."""
        cutoff = utc_now() - timedelta(days=self.settings.event_retention_days)
        async with self.sessions() as session:
            locked = await session.execute(
                text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": RETENTION_LOCK_ID}
            )
            if not locked.scalar_one():
                return 0  # another worker is pruning
            row = (
                await session.execute(
                    _PRUNE_BATCH,
                    {"cutoff": cutoff, "after": self._prune_after, "batch": RETENTION_BATCH},
                )
            ).one()
            await session.commit()
        if row.last_seq is not None:
            self._prune_after = row.last_seq
        self._pruned_in_pass += row.pruned
        if row.scanned >= RETENTION_BATCH and not row.reached_new:
            return int(row.scanned)
        if self._pruned_in_pass:
            log.info(
                "pruned webhook event bodies",
                extra={"events": self._pruned_in_pass, "older_than_days": cutoff.isoformat()},
            )
            self._pruned_in_pass = 0
        return 0

    # ---- enrichment jobs -----------------------------------------------------------------

    async def process_jobs(self) -> int:
        async with self.sessions() as session:
            await session.execute(_RELEASE_STALE, {"stale": STALE_JOB})
            await session.execute(_REQUEUE_STALE, {"stale": STALE_JOB})
            claimed = list(
                await session.execute(_CLAIM_JOBS, {"worker": self.name, "limit": JOB_BATCH})
            )
            await session.commit()
        await asyncio.gather(*(self._do_job(job) for job in claimed))
        return len(claimed)

    async def _do_job(self, job: Any) -> None:
        try:
            if job.kind != REFRESH_METER:
                raise ValueError(f"unknown job kind {job.kind!r}")
            await self.refresh_meter(job.meter_id)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            dead = job.attempts >= JOB_MAX_ATTEMPTS or isinstance(exc, ValueError)
            delay = 600 if isinstance(exc, LeapAuthError) else min(2**job.attempts, 300)
            async with self.sessions() as session:
                await session.execute(
                    _JOB_RETRY,
                    {
                        "id": job.id,
                        "kind": job.kind,
                        "meter_id": job.meter_id,
                        "dead": dead,
                        "delay": float(delay),
                        "error": f"{type(exc).__name__}: {exc}"[:2000],
                    },
                )
                await session.commit()
            if not isinstance(exc, LeapError):
                log.exception("job failed", extra={"job_id": job.id})
            return
        async with self.sessions() as session:
            await session.execute(_JOB_DONE, {"id": job.id})
            await session.commit()
        log.debug("job done", extra={"job_id": job.id, "worker": self.name})

    async def refresh_meter(self, meter_id: Any) -> None:
        """Fetch a meter's details and enrollment from Leap and store them (newer only)."""
        client = self.client()
        meter, enrollment = await asyncio.gather(
            client.get_meter(meter_id), client.get_enrollment(meter_id)
        )
        async with self.sessions() as session:
            if meter is not None:
                await records.store_meters(session, [meter])
            if enrollment is not None:
                await records.store_enrollments(session, [enrollment])
            await session.commit()

    # ---- leadership and scheduled runs -------------------------------------------------

    async def _lead(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self.engine.connect() as conn:
                    if await self.try_lead(conn):
                        self.is_leader = True
                        log.info("this worker leads scheduled reconciliation")
                        try:
                            await self._schedule(conn, stop)
                        finally:
                            self.is_leader = False
                            # The lock belongs to this session: never hand it back to the
                            # pool still locked. Closing the connection releases it.
                            await conn.invalidate()
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("leader loop failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEADER_POLL_S)

    @staticmethod
    async def try_lead(conn: AsyncConnection) -> bool:
        """Take the reconciliation lock on `conn` (held until it closes) if it is free."""
        result = await conn.execute(
            text("SELECT pg_try_advisory_lock(:id)"), {"id": LEADER_LOCK_ID}
        )
        await conn.commit()
        return bool(result.scalar_one())

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
                run_mode = run.mode if run is not None else "delta"
            if run_id is not None:
                started = time.monotonic()
                try:
                    done = await runs.execute(self.sessions, self.client(), run_id)
                except LeapAuthError:
                    metrics.sync_run_ended(run_mode, "failed", time.monotonic() - started)
                    log.error("reconciliation stopped: Leap refused LEAP_API_KEY")
                else:
                    took = (
                        (done.finished_at - done.started_at).total_seconds()
                        if done.finished_at and done.started_at
                        else None
                    )
                    metrics.sync_run_ended(done.mode, done.status, took)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEADER_POLL_S)
