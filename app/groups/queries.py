"""Read side for market groups."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.groups import repository
from app.groups.schemas import GroupCount, GroupsOut
from app.groups.trade_dates import check_trade_date, current_trade_date
from app.problems import Problem


def _checked(day: date) -> date:
    try:
        return check_trade_date(day)
    except ValueError as exc:
        raise Problem(422, str(exc)) from None


async def roster(
    session: AsyncSession,
    group_id: uuid.UUID,
    trade_date: date | None,
    cursor: uuid.UUID | None,
    limit: int,
) -> dict[str, Any]:
    """The roster as RosterOut's JSON shape, built as plain data (it may hold 100k rows).
    Without a trade date: today in the group's own market zone."""
    zone = await repository.group_zone(session, group_id)
    if zone is False:
        raise Problem(404, "no market group with this id")
    day = _checked(trade_date or current_trade_date(ZoneInfo(str(zone or "UTC"))))
    rows = await repository.roster(session, group_id, day, after=cursor, limit=limit)
    return {
        "market_group_id": str(group_id),
        "trade_date": day.isoformat(),
        "items": [{"meter_id": str(m), "partner_reference": r} for m, r in rows],
        "next_cursor": str(rows[-1][0]) if len(rows) == limit else None,
    }


async def group_named(session: AsyncSession, name: str) -> tuple[uuid.UUID, str]:
    """The one group called `name` (any case): for people who know groups by name."""
    found = await repository.named(session, name)
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(str(g) for g, _ in found)
        raise Problem(409, f"several groups are named {name!r}: give one of {ids}")
    known = ", ".join(await repository.some_names(session)) or "none yet"
    raise Problem(404, f"no group is named {name!r} (some names: {known})")


async def group_counts(session: AsyncSession, trade_date: date | None) -> GroupsOut:
    day = _checked(trade_date) if trade_date is not None else None
    rows = await repository.counts(session, day)
    return GroupsOut(
        trade_date=day,
        items=[
            GroupCount(
                market_group_id=g, market_group_name=n, time_zone=z, trade_date=d, meter_count=c
            )
            for g, n, z, d, c in rows
        ],
    )
