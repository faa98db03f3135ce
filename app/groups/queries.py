"""Read side for market groups."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utc_now
from app.config import Settings
from app.groups import repository
from app.groups.schemas import GroupCount, GroupsOut
from app.groups.trade_dates import check_trade_date
from app.problems import Problem


def _trade_date(trade_date: date | None) -> date:
    # Without a date, "today" is taken in UTC's calendar; pass trade_date to be exact.
    day = trade_date or utc_now().date()
    try:
        return check_trade_date(day)
    except ValueError as exc:
        raise Problem(422, str(exc)) from None


async def roster(
    session: AsyncSession,
    settings: Settings,
    group_id: uuid.UUID,
    trade_date: date | None,
    cursor: uuid.UUID | None,
    limit: int,
) -> dict[str, Any]:
    """The roster as RosterOut's JSON shape, built as plain data (it may hold 100k rows)."""
    if not await repository.group_exists(session, group_id):
        raise Problem(404, "no market group with this id")
    day = _trade_date(trade_date)
    rows = await repository.roster(
        session, group_id, day, settings.market_timezones, after=cursor, limit=limit
    )
    return {
        "market_group_id": str(group_id),
        "trade_date": day.isoformat(),
        "items": [{"meter_id": str(m), "partner_reference": r} for m, r in rows],
        "next_cursor": str(rows[-1][0]) if len(rows) == limit else None,
    }


async def group_counts(
    session: AsyncSession, settings: Settings, trade_date: date | None
) -> GroupsOut:
    day = _trade_date(trade_date)
    rows = await repository.counts(session, day, settings.market_timezones)
    return GroupsOut(
        trade_date=day,
        items=[
            GroupCount(market_group_id=g, market_group_name=n, meter_count=c) for g, n, c in rows
        ],
    )
