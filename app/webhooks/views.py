"""Response models for the event log."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import WebhookEvent
from app.webhooks import repository


class EventSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    webhook_event_id: uuid.UUID
    event_type: str
    status: str
    error: str | None
    attempts: int
    meter_id: uuid.UUID | None
    partner_reference: str | None
    duplicate_deliveries: int
    conflicting_deliveries: int
    received_at: datetime
    applied_at: datetime | None


class EventDetail(EventSummary):
    body_size: int
    # The body as delivered, decoded as UTF-8 with bad bytes replaced; null once pruned.
    body: str | None

    @field_validator("body", mode="before")
    @classmethod
    def _decode(cls, value: object) -> object:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class EventPage(BaseModel):
    items: list[EventSummary]
    next_cursor: str | None


def event_detail(event: WebhookEvent) -> EventDetail:
    return EventDetail.model_validate(event)


async def event_page(
    session: AsyncSession,
    *,
    status: str | None,
    event_type: str | None,
    cursor: int | None,
    limit: int,
) -> EventPage:
    events = await repository.list_events(
        session, status=status, event_type=event_type, after_seq=cursor, limit=limit
    )
    next_cursor = str(events[-1].seq) if len(events) == limit else None
    return EventPage(
        items=[EventSummary.model_validate(e) for e in events], next_cursor=next_cursor
    )
