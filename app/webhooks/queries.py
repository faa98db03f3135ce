"""Read side of the event log."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import WebhookEvent
from app.webhooks import repository
from app.webhooks.schemas import EventDetail, EventPage, EventSummary


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
