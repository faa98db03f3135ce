"""SQL for the webhook inbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import WebhookEvent

# The inbox write: exactly one row per Leap event id, however many deliveries race.
_INSERT = text(
    """
    INSERT INTO webhook_events (webhook_event_id, event_type, status, error, meter_id,
                                partner_reference, body, body_sha256, body_size,
                                applied_at, next_attempt_at)
    VALUES (:event_id, :event_type, :status, :error, :meter_id, :partner_reference,
            :body, :sha, :size,
            CASE WHEN :status = 'applied' THEN now() END, :next_attempt_at)
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


async def insert(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    event_type: str,
    status: str,
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


async def note_redelivery(session: AsyncSession, event_id: uuid.UUID, sha: bytes) -> bool:
    """Count a redelivery; True when its body differs from the stored one."""
    row = (await session.execute(_NOTE_REDELIVERY, {"event_id": event_id, "sha": sha})).first()
    return bool(row and row.conflicting)


async def get(session: AsyncSession, event_id: uuid.UUID) -> WebhookEvent | None:
    return await session.get(WebhookEvent, event_id)


async def list_events(
    session: AsyncSession,
    *,
    status: str | None,
    event_type: str | None,
    after_seq: int | None,
    limit: int,
) -> Sequence[WebhookEvent]:
    query = select(WebhookEvent).order_by(WebhookEvent.seq).limit(limit)
    if status is not None:
        query = query.where(WebhookEvent.status == status)
    if event_type is not None:
        query = query.where(WebhookEvent.event_type == event_type)
    if after_seq is not None:
        query = query.where(WebhookEvent.seq > after_seq)
    return (await session.scalars(query)).all()
