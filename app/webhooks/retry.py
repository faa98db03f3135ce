"""Stored events whose apply failed: retried by the worker with backoff, replayable by ops.

After MAX_ATTEMPTS failed applies an event is left `dead` for ops to look at; nothing is
ever dropped. Rows are claimed with FOR UPDATE SKIP LOCKED, so workers share the work.
"""

from __future__ import annotations

import logging
import uuid

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.dispatch.service import reapply_stored as reapply_dispatch
from app.leap.dispatch import DISPATCH_EVENT_TYPES
from app.models import WebhookEvent
from app.webhooks import parsing
from app.webhooks.schemas import EVENT_ADAPTER, KNOWN_EVENT_TYPES, read_envelope, utc_now
from app.webhooks.service import apply, retry_delay, storable_text

log = logging.getLogger("meter_sync.webhooks")
MAX_ATTEMPTS = 8
BATCH = 20


async def reapply(session: AsyncSession, event: WebhookEvent, *, refresh: bool) -> bool:
    """Apply a stored event's body again inside a savepoint; record the outcome."""
    event.attempts += 1
    event.updated_at = utc_now()
    try:
        if event.body is None:
            raise ValueError("the body was pruned by retention")
        if event.event_type in DISPATCH_EVENT_TYPES:
            await reapply_dispatch(
                session, event.event_type, event.body, event.webhook_event_id, refresh=refresh
            )
        else:
            envelope = read_envelope(parsing.decode(event.body))
            if envelope.event_type not in KNOWN_EVENT_TYPES:
                event.status = "ignored"
                return True
            payload = EVENT_ADAPTER.validate_python(envelope.payload)
            async with session.begin_nested():
                await apply(session, payload, event.webhook_event_id, refresh=refresh)
    except (ValueError, ValidationError, parsing.BadBody) as exc:
        event.status, event.error, event.next_attempt_at = "dead", storable_text(str(exc)), None
        return False
    except Exception as exc:
        event.error = storable_text(f"{type(exc).__name__}: {exc}")
        if event.attempts >= MAX_ATTEMPTS:
            event.status, event.next_attempt_at = "dead", None
        else:
            event.status = "failed"
            event.next_attempt_at = utc_now() + retry_delay(event.attempts)
        return False
    event.status, event.error, event.applied_at, event.next_attempt_at = (
        "applied",
        None,
        utc_now(),
        None,
    )
    return True


async def retry_due(sessions: async_sessionmaker[AsyncSession], *, refresh: bool) -> int:
    """Retry the failed events that are due; returns how many were tried."""
    async with sessions() as session:
        due = (
            await session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.status == "failed", WebhookEvent.next_attempt_at <= utc_now())
                .order_by(WebhookEvent.next_attempt_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for event in due:
            if not await reapply(session, event, refresh=refresh):
                metrics.apply_failed("retry")
                log.warning(
                    "webhook retry failed",
                    extra={"webhook_event_id": str(event.webhook_event_id), "status": event.status},
                )
        await session.commit()
        return len(due)


async def replay(
    session: AsyncSession, event_id: uuid.UUID, *, refresh: bool
) -> WebhookEvent | None:
    """Ops: apply one stored event again, whatever its status (flush only)."""
    event = await session.get(WebhookEvent, event_id, with_for_update=True)
    if event is None:
        return None
    await reapply(session, event, refresh=refresh)
    await session.flush()
    return event
