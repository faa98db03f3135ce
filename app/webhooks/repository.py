"""SQL for the webhook inbox."""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db import RawPool, RawStatement
from app.group_commit import GroupCommit
from app.meters.repository import MeterFacts, meter_effects
from app.models import JobKind, WebhookEvent, WebhookStatus

Executor = AsyncSession | AsyncConnection

# The inbox write: exactly one row per Leap event id, however many deliveries race.
_INSERT = text(
    f"""
    INSERT INTO webhook_events (webhook_event_id, event_type, status, error, meter_id,
                                partner_reference, body, body_sha256, body_size,
                                applied_at, next_attempt_at)
    VALUES (:event_id, :event_type, :status, :error, :meter_id, :partner_reference,
            :body, :sha, :size,
            CASE WHEN :status = '{WebhookStatus.APPLIED}' THEN now() END, :next_attempt_at)
    ON CONFLICT (webhook_event_id) DO NOTHING
    RETURNING seq
    """
)

_NOTE_REDELIVERY = text(
    """
    UPDATE webhook_events
    SET duplicate_deliveries = duplicate_deliveries + 1,
        conflicting_deliveries = conflicting_deliveries + (body_sha256 <> :sha)::int,
        updated_at = now()
    WHERE webhook_event_id = :event_id
    RETURNING body_sha256 <> :sha AS conflicting
    """
)


# Meter events stored and applied in one statement, any number at once (atomic, one round
# trip): `input` holds the events in arrival order; each one's effects run only when its
# row was the one inserted into the inbox. Within one statement the events must be of
# distinct ids and distinct meters (GroupCommit splits a batch so); the answer is whether
# each was stored, in input order.
_STORE_METER_EVENTS = text(
    f"""
    WITH input AS (
        SELECT * FROM unnest(
            CAST(:event_ids AS uuid[]), CAST(:event_types AS text[]),
            CAST(:meter_ids AS uuid[]), CAST(:refs AS text[]), CAST(:bodies AS bytea[]),
            CAST(:shas AS bytea[]), CAST(:sizes AS integer[]), CAST(:regions AS text[]),
            CAST(:meter_types AS text[]), CAST(:statuses AS text[]),
            CAST(:actions AS text[]), CAST(:participations AS text[]),
            CAST(:refreshes AS boolean[])
        ) WITH ORDINALITY AS i(event_id, event_type, meter_id, reference, body, sha, size,
                               region, meter_type, status, actions, pref_window, refresh,
                               ord)
    ), event AS (
        INSERT INTO webhook_events (webhook_event_id, event_type, status, meter_id,
                                    partner_reference, body, body_sha256, body_size, applied_at)
        SELECT event_id, event_type, '{WebhookStatus.APPLIED}', meter_id, reference, body, sha,
               size, now()
        FROM input ORDER BY ord
        ON CONFLICT (webhook_event_id) DO NOTHING
        RETURNING webhook_event_id
    ), {
        meter_effects('''
        SELECT meter_id, event_id, reference, region, meter_type, status,
               CAST(actions AS jsonb) AS actions, CAST(pref_window AS jsonb) AS pref_window,
               refresh AND go AS refresh, CAST(:refresh_kind AS text) AS refresh_kind, go
        FROM (SELECT i.*, i.event_id IN (SELECT webhook_event_id FROM event) AS go
              FROM input i) AS stored''')
    }
    SELECT array_agg(i.event_id IN (SELECT webhook_event_id FROM event) ORDER BY i.ord)
    FROM input i
    """
)
STORE_METER_EVENTS = RawStatement.compile(_STORE_METER_EVENTS)

# Each array of the statement, from each event's parameters (MeterFacts.params and the
# delivery's own).
_ARRAYS = {
    "event_ids": "event_id",
    "event_types": "event_type",
    "meter_ids": "meter_id",
    "refs": "partner_reference",
    "bodies": "body",
    "shas": "sha",
    "sizes": "size",
    "regions": "transmission_region",
    "meter_types": "meter_type",
    "statuses": "enrollment_status",
    "actions": "required_actions",
    "participations": "participation",
    "refreshes": "refresh",
}


class MeterEventBatch:
    """The statement for `GroupCommit`: meter events as its arrays, split by event id and
    meter (an event's parameters are a dict: `MeterFacts.params` and the delivery's own)."""

    sql = STORE_METER_EVENTS.sql

    @staticmethod
    def params(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        params: dict[str, Any] = {
            array: [event[key] for event in events] for array, key in _ARRAYS.items()
        }
        params["refresh_kind"] = JobKind.REFRESH_METER
        return params

    def args(self, events: Sequence[Mapping[str, Any]]) -> list[Any]:
        return STORE_METER_EVENTS.args(self.params(events))

    @staticmethod
    def keys(event: Mapping[str, Any]) -> tuple[Hashable, ...]:
        return (event["event_id"], event["meter_id"])


def meter_event_writer(pool: RawPool) -> GroupCommit:
    """The receiver's writer of meter events: group-committed under load."""
    return GroupCommit(pool, MeterEventBatch())


async def store_meter_event(
    writer: GroupCommit,
    facts: MeterFacts,
    *,
    event_id: uuid.UUID,
    event_type: str,
    body: bytes,
    sha: bytes,
    refresh: bool,
) -> bool:
    """Store and apply a meter event; False when the id was already stored (no effect).
    Bounded by the receiver's deadline (replays and retries use the session path)."""
    params = facts.params(event_id, refresh=refresh)
    params.update(event_type=event_type, body=body, sha=sha, size=len(body))
    return bool(await writer.fetchval(params))


async def insert(
    session: Executor,
    *,
    event_id: uuid.UUID,
    event_type: str,
    status: WebhookStatus,
    body: bytes,
    sha: bytes,
    error: str | None = None,
    meter_id: uuid.UUID | None = None,
    partner_reference: str | None = None,
    next_attempt_at: datetime | None = None,
) -> bool:
    """Store the event; False when the id was already stored (nothing written)."""
    result = await session.execute(
        _INSERT,
        {
            "event_id": event_id,
            "event_type": event_type,
            "status": status,
            "error": error,
            "meter_id": meter_id,
            "partner_reference": partner_reference,
            "body": body,
            "sha": sha,
            "size": len(body),
            "next_attempt_at": next_attempt_at,
        },
    )
    return result.first() is not None


async def note_redelivery(session: Executor, event_id: uuid.UUID, sha: bytes) -> bool:
    """Count a redelivery; True when its body differs from the stored one."""
    row = (await session.execute(_NOTE_REDELIVERY, {"event_id": event_id, "sha": sha})).first()
    return bool(row and row.conflicting)


async def get(session: AsyncSession, event_id: uuid.UUID) -> WebhookEvent | None:
    return await session.get(WebhookEvent, event_id)


async def ids_with_status(
    session: AsyncSession, statuses: Sequence[WebhookStatus]
) -> list[uuid.UUID]:
    query = select(WebhookEvent.webhook_event_id).where(WebhookEvent.status.in_(statuses))
    return list((await session.scalars(query.order_by(WebhookEvent.seq))).all())


async def list_events(
    session: AsyncSession,
    *,
    statuses: Sequence[str] | None,
    event_type: str | None,
    after_seq: int | None,
    limit: int,
) -> Sequence[WebhookEvent]:
    query = select(WebhookEvent).order_by(WebhookEvent.seq).limit(limit)
    if statuses:
        query = query.where(WebhookEvent.status.in_(statuses))
    if event_type is not None:
        query = query.where(WebhookEvent.event_type == event_type)
    if after_seq is not None:
        query = query.where(WebhookEvent.seq > after_seq)
    return (await session.scalars(query)).all()


# One retention batch: walk the inbox in `seq` order (its unique index; received_at has
# none) from where the last batch stopped, up to the first row not yet old enough, and
# drop the bodies of the old rows. Events still waiting for a retry keep theirs.
_PRUNE_BATCH = text(
    f"""
    WITH chunk AS (
        SELECT webhook_event_id, seq, received_at < :cutoff AS old,
               body IS NOT NULL
               AND status NOT IN ('{WebhookStatus.FAILED}', '{WebhookStatus.RECEIVED}') AS prunable
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


async def prune_bodies(
    session: AsyncSession, *, cutoff: datetime, after_seq: int, batch: int
) -> Row[Any]:
    """One retention batch from `after_seq`: (last_seq, scanned, pruned, reached_new)."""
    params = {
        "cutoff": cutoff,
        "after": after_seq,
        "batch": batch,
    }
    return (await session.execute(_PRUNE_BATCH, params)).one()


# received_at has no index, but seq (unique) grows with it: the newest rows are walked
# backwards by seq, at most `scan` of them, so the cost stays bounded on a large log.
_RECEIVED_PER_MINUTE = text(
    """
    WITH recent AS MATERIALIZED (
        SELECT received_at FROM webhook_events ORDER BY seq DESC LIMIT :scan
    )
    SELECT date_trunc('minute', received_at) AS minute, count(*) AS received,
           (SELECT count(*) FROM recent) >= :scan AS capped
    FROM recent
    WHERE received_at >= :since
    GROUP BY 1
    ORDER BY 1
    """
)


async def received_per_minute(
    session: AsyncSession, since: datetime, scan: int
) -> tuple[list[tuple[datetime, int]], bool]:
    """Events received per minute since `since` among the newest `scan` events; the flag
    says the scan reached its cap (older minutes may then be undercounted)."""
    rows = (await session.execute(_RECEIVED_PER_MINUTE, {"since": since, "scan": scan})).all()
    capped = bool(rows and rows[0].capped)
    return [(row.minute, int(row.received)) for row in rows], capped
