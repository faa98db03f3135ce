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
from app.clock import utc_now
from app.leap.events import EVENT_ADAPTER, KNOWN_EVENT_TYPES
from app.models import WebhookEvent, WebhookStatus
from app.webhooks import parsing
from app.webhooks.schemas import read_envelope
from app.webhooks.service import (
    ApplyOptions,
    apply,
    error_text,
    field_errors,
    retry_delay,
    storable_text,
)

log = logging.getLogger("meter_sync.webhooks")
MAX_ATTEMPTS = 8
BATCH = 20


async def reapply(session: AsyncSession, event: WebhookEvent, options: ApplyOptions) -> bool:
    """Apply a stored event's body again inside a savepoint; record the outcome."""
    event.attempts += 1
    event.updated_at = utc_now()
    try:
        if event.body is None:
            raise ValueError("the body was pruned by retention")
        reapplier = options.reappliers.get(event.event_type)
        if reapplier is not None:
            # Another surface's stored body (a dispatch notification): its own domain
            # applies it, in a savepoint too.
            async with session.begin_nested():
                await reapplier(session, event.body, event.webhook_event_id, options)
        else:
            envelope = read_envelope(parsing.decode(event.body))
            if envelope.event_type not in KNOWN_EVENT_TYPES:
                event.status = WebhookStatus.IGNORED
                return True
            payload = EVENT_ADAPTER.validate_python(envelope.payload)
            async with session.begin_nested():
                await apply(session, payload, event.webhook_event_id, options)
    except (ValueError, parsing.BadBody) as exc:
        # The same short line the receiver stores, not pydantic's multi-line dump
        # (a ValidationError is a ValueError).
        short = error_text(field_errors(exc)) if isinstance(exc, ValidationError) else str(exc)
        event.status, event.error, event.next_attempt_at = (
            WebhookStatus.DEAD,
            storable_text(short),
            None,
        )
        return False
    except Exception as exc:
        event.error = storable_text(f"{type(exc).__name__}: {exc}")
        if event.attempts >= MAX_ATTEMPTS:
            event.status, event.next_attempt_at = WebhookStatus.DEAD, None
        else:
            event.status = WebhookStatus.FAILED
            event.next_attempt_at = utc_now() + retry_delay(event.attempts)
        return False
    event.status, event.error, event.applied_at, event.next_attempt_at = (
        WebhookStatus.APPLIED,
        None,
        utc_now(),
        None,
    )
    return True


async def retry_due(sessions: async_sessionmaker[AsyncSession], options: ApplyOptions) -> int:
    """Retry the failed events that are due; returns how many were tried."""
    async with sessions() as session:
        due = (
            await session.scalars(
                select(WebhookEvent)
                .where(
                    WebhookEvent.status == WebhookStatus.FAILED,
                    WebhookEvent.next_attempt_at <= utc_now(),
                )
                .order_by(WebhookEvent.next_attempt_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for event in due:
            if not await reapply(session, event, options):
                metrics.apply_failed("retry")
                log.warning(
                    "webhook retry failed",
                    extra={"webhook_event_id": str(event.webhook_event_id), "status": event.status},
                )
        await session.commit()
        return len(due)


async def replay(
    session: AsyncSession, event_id: uuid.UUID, options: ApplyOptions
) -> WebhookEvent | None:
    """Ops: apply one stored event again, whatever its status (flush only)."""
    event = await session.get(WebhookEvent, event_id, with_for_update=True)
    if event is None:
        return None
    await reapply(session, event, options)
    await session.flush()
    return event
