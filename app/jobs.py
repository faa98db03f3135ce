"""The durable job queue in PostgreSQL: every statement that writes `jobs`.

Jobs are written in the same transaction as the change that needs them, so a job exists
if and only if its cause was committed. A second enqueue for a meter that already has a
queued job of the same kind is a no-op: refreshes coalesce per meter. Workers claim with
FOR UPDATE SKIP LOCKED, so any number of them share the queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import JobKind, JobStatus

# A claimed job older than this is taken back (its worker died): jobs take seconds.
STALE_AFTER = timedelta(minutes=2)

_QUEUED = f"status = '{JobStatus.QUEUED}'"


def enqueue_cte(name: str, source: str) -> str:
    """A CTE that queues a refresh for each `(refresh_kind, meter_id)` row of `source`,
    for statements that do all their writes at once (the webhook hot path)."""
    return f"""{name} AS (
        INSERT INTO jobs (kind, meter_id)
        SELECT refresh_kind, meter_id FROM {source}
        ON CONFLICT (kind, meter_id) WHERE {_QUEUED} DO NOTHING
    )"""


async def enqueue_refreshes(session: AsyncSession, meter_ids: Sequence[uuid.UUID]) -> None:
    """One refresh per meter, coalesced with those already queued."""
    await session.execute(
        text(
            f"""
            INSERT INTO jobs (kind, meter_id)
            SELECT :kind, m FROM unnest(CAST(:meter_ids AS uuid[])) AS m
            ON CONFLICT (kind, meter_id) WHERE {_QUEUED} DO NOTHING
            """
        ),
        {"kind": JobKind.REFRESH_METER, "meter_ids": [str(m) for m in meter_ids]},
    )


_CLAIM = text(
    f"""
    UPDATE jobs SET status = '{JobStatus.RUNNING}', locked_by = :worker, locked_at = now(),
                    attempts = attempts + 1, updated_at = now()
    WHERE id IN (
        SELECT id FROM jobs
        WHERE {_QUEUED} AND run_after <= now()
        ORDER BY run_after, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, kind, meter_id, attempts
    """
)
_DONE = text("DELETE FROM jobs WHERE id = :id")
# Back to the queue, unless an identical job was queued meanwhile (then this one goes).
_RETRY = text(
    f"""
    WITH twin AS (
        SELECT 1 FROM jobs WHERE kind = :kind AND meter_id IS NOT DISTINCT FROM :meter_id
          AND {_QUEUED} AND id <> :id
    ), requeued AS (
        UPDATE jobs SET status = CASE WHEN :dead THEN '{JobStatus.DEAD}'
                                      ELSE '{JobStatus.QUEUED}' END,
                        run_after = now() + make_interval(secs => :delay),
                        last_error = :error, locked_by = NULL, locked_at = NULL,
                        updated_at = now()
        WHERE id = :id AND (:dead OR NOT EXISTS (SELECT 1 FROM twin))
        RETURNING id
    )
    DELETE FROM jobs WHERE id = :id AND NOT EXISTS (SELECT 1 FROM requeued)
    """
)
# Running jobs matching `:who` go back to the queue, or go if an identical job was queued
# meanwhile. Used for jobs of a worker that died (stale) and of one that stops (mine).
_HAS_QUEUED_TWIN = f"""EXISTS (SELECT 1 FROM jobs q WHERE q.{_QUEUED} AND q.kind = j.kind
                  AND q.meter_id IS NOT DISTINCT FROM j.meter_id)"""
_STALE = "locked_at < now() - CAST(:stale AS interval)"
_MINE = "locked_by = :worker"


def _release(who: str, attempt_counts: bool) -> tuple[Any, Any]:
    attempts = "" if attempt_counts else "attempts = GREATEST(attempts - 1, 0),"
    running = f"status = '{JobStatus.RUNNING}'"
    return (
        text(f"DELETE FROM jobs j WHERE j.{running} AND j.{who} AND {_HAS_QUEUED_TWIN}"),
        text(
            f"""UPDATE jobs SET status = '{JobStatus.QUEUED}', locked_by = NULL,
                   locked_at = NULL, {attempts} updated_at = now()
            WHERE {running} AND {who}"""
        ),
    )


# A stale job's attempt counts (it may be what killed its worker); a stopping worker's not.
_RELEASE_STALE = _release(_STALE, attempt_counts=True)
_RELEASE_MINE = _release(_MINE, attempt_counts=False)


async def claim(session: AsyncSession, worker: str, limit: int) -> list[Row[Any]]:
    """Take back stale jobs, then claim up to `limit` due ones for `worker`."""
    for statement in _RELEASE_STALE:
        await session.execute(statement, {"stale": STALE_AFTER})
    return list(await session.execute(_CLAIM, {"worker": worker, "limit": limit}))


async def done(session: AsyncSession, job_id: int) -> None:
    await session.execute(_DONE, {"id": job_id})


async def retry_later(
    session: AsyncSession, job: Row[Any], *, dead: bool, delay_s: float, error: str
) -> None:
    await session.execute(
        _RETRY,
        {
            "id": job.id,
            "kind": job.kind,
            "meter_id": job.meter_id,
            "dead": dead,
            "delay": delay_s,
            "error": error[:2000],
        },
    )


async def release(session: AsyncSession, worker: str) -> None:
    """Put `worker`'s running jobs back in the queue, their attempt not counted."""
    for statement in _RELEASE_MINE:
        await session.execute(statement, {"worker": worker})
