"""Enrichment: refresh jobs fetch a meter's details and enrollment from Leap's API.

Jobs come from the queue (app/jobs.py), claimed by any worker; a failed job is retried
with backoff and left `dead` after MAX_ATTEMPTS.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import jobs
from app.db import is_unavailable
from app.leap.client import LeapClient
from app.leap.errors import LeapAuthError, LeapError
from app.models import JobKind
from app.sync import records

log = logging.getLogger("meter_sync.worker")

BATCH = 16
MAX_ATTEMPTS = 8


class Enrichment:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: Callable[[], LeapClient],
        worker: str,
        zones: Mapping[str, str],
    ) -> None:
        self.sessions = sessions
        self.zones = zones
        self.client = client
        self.worker = worker

    async def process_jobs(self) -> int:
        """Claim a batch of due jobs and do them; how many were claimed."""
        async with self.sessions() as session:
            claimed = await jobs.claim(session, self.worker, BATCH)
            await session.commit()
        await asyncio.gather(*(self._do(job) for job in claimed))
        return len(claimed)

    async def _do(self, job: Row[Any]) -> None:
        try:
            if job.kind != JobKind.REFRESH_METER:
                raise ValueError(f"unknown job kind {job.kind!r}")
            await self.refresh_meter(job.meter_id)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            dead = job.attempts >= MAX_ATTEMPTS or isinstance(exc, ValueError)
            delay = 600 if isinstance(exc, LeapAuthError) else min(2**job.attempts, 300)
            async with self.sessions() as session:
                await jobs.retry_later(
                    session,
                    job,
                    dead=dead,
                    delay_s=float(delay),
                    error=f"{type(exc).__name__}: {exc}",
                )
                await session.commit()
            if not isinstance(exc, LeapError):
                log.exception("job failed", extra={"job_id": job.id})
            return
        async with self.sessions() as session:
            await jobs.done(session, job.id)
            await session.commit()
        log.debug("job done", extra={"job_id": job.id, "worker": self.worker})

    async def refresh_meter(self, meter_id: uuid.UUID) -> None:
        """Fetch a meter's details and enrollment from Leap and store them (newer only)."""
        client = self.client()
        meter, enrollment = await asyncio.gather(
            client.get_meter(meter_id), client.get_enrollment(meter_id)
        )
        async with self.sessions() as session:
            if meter is not None:
                await records.store_meters(session, [meter])
            if enrollment is not None:
                await records.store_enrollments(session, [enrollment], self.zones)
            await session.commit()

    async def release(self) -> None:
        """This worker's jobs still running go back to the queue (on stop)."""
        async with self.sessions() as session:
            await jobs.release(session, self.worker)
            await session.commit()
