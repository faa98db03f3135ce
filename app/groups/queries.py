"""Read side for market groups."""

from __future__ import annotations

import json
import uuid
from datetime import date
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
) -> bytes:
    """The roster as RosterOut's JSON, assembled around the items PostgreSQL built (it may
    hold 100k members). Without a trade date: today in the group's own market zone."""
    group = await repository.group_name_and_zone(session, group_id)
    if group is None:
        raise Problem(404, "no market group with this id")
    name, zone = group
    day = _checked(trade_date or current_trade_date(ZoneInfo(zone or "UTC")))
    page = await repository.roster(session, group_id, day, after=cursor, limit=limit)
    more = page.count == limit and page.last_meter_id is not None
    next_cursor = f'"{page.last_meter_id}"' if more else "null"
    head = {"market_group_id": str(group_id), "market_group_name": name}
    return (
        f'{json.dumps(head)[:-1]},"trade_date":"{day.isoformat()}",'
        f'"items":{page.items_json},"next_cursor":{next_cursor}}}'
    ).encode()


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
                market_group_id=g,
                market_group_name=n,
                time_zone=z,
                transmission_region=r,
                trade_date=d,
                meter_count=c,
            )
            for g, n, z, d, c, r in rows
        ],
    )
