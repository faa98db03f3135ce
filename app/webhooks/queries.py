"""Read side of the event log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utc_now
from app.models import WebhookEvent, WebhookStatus
from app.webhooks import repository
from app.webhooks.schemas import (
    RATE_SCAN,
    EventDetail,
    EventPage,
    EventRate,
    EventSummary,
    MinuteCount,
)


def parsed_body(body: bytes | None) -> Any:
    """The body as JSON when it parses (None otherwise), so the log shows it as JSON."""
    if body is None:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


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
    detail = EventDetail.model_validate(event)
    return detail.model_copy(update={"body_json": parsed_body(event.body)})


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


async def events_per_minute(session: AsyncSession, hours: int) -> EventRate:
    """Events received in each minute of the last `hours`, zeros included (for a chart)."""
    until = utc_now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = until - timedelta(hours=hours)
    counted, capped = await repository.received_per_minute(session, since, RATE_SCAN)
    by_minute = dict(counted)
    minutes = [
        MinuteCount(minute=minute, received=by_minute.get(minute, 0))
        for minute in (since + timedelta(minutes=i) for i in range(hours * 60))
    ]
    return EventRate(
        since=since,
        until=until,
        minutes=minutes,
        total=sum(m.received for m in minutes),
        capped=capped,
    )
