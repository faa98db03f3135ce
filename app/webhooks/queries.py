"""Read side of the event log."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import WebhookEvent, WebhookStatus
from app.webhooks import repository
from app.webhooks.schemas import EventDetail, EventPage, EventSummary

STATUS_NAMES = tuple(s.value for s in WebhookStatus)


def parse_statuses(text: str) -> list[WebhookStatus]:
    """`failed,dead` -> [FAILED, DEAD]; ValueError naming the allowed values otherwise."""
    parts = [part.strip().lower() for part in text.split(",")]
    unknown = [p for p in parts if p not in STATUS_NAMES]
    if unknown or not parts:
        raise ValueError(
            f"unknown status {', '.join(map(repr, unknown)) or repr(text)}: "
            f"use one or more of {', '.join(STATUS_NAMES)}, separated by commas"
        )
    return list(dict.fromkeys(WebhookStatus(p) for p in parts))


def event_detail(event: WebhookEvent) -> EventDetail:
    return EventDetail.model_validate(event)


async def event_page(
    session: AsyncSession,
    *,
    statuses: Sequence[WebhookStatus] | None,
    event_type: str | None,
    cursor: int | None,
    limit: int,
) -> EventPage:
    events = await repository.list_events(
        session, statuses=statuses, event_type=event_type, after_seq=cursor, limit=limit
    )
    next_cursor = str(events[-1].seq) if len(events) == limit else None
    return EventPage(
        items=[EventSummary.model_validate(e) for e in events], next_cursor=next_cursor
    )
