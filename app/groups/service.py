"""What group.updated does: the group's one window and members become what it says."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app import locks
from app.changes import repository as changes
from app.groups import repository
from app.groups.trade_dates import covered_days, zones_starting_at_midnight
from app.leap.events import GroupUpdated


async def group_zone(session: AsyncSession, event: GroupUpdated, zones: Mapping[str, str]) -> str:
    """The market zone a group's trade dates are read in.

    Leap starts a group's window at midnight in its market, so the zone is the one in
    which `start_date_time` is local midnight. Where several zones agree on that instant
    (Los Angeles and Phoenix in summer), a known member's region decides; where none
    does, a known member's region; else UTC.
    """
    candidates = zones_starting_at_midnight(event.start_date_time, zones.values())
    if len(candidates) == 1:
        return candidates[0]
    region = await repository.a_member_region(session, event.meter_ids)
    member_zone = zones.get(region) if region is not None else None
    if member_zone is not None and (not candidates or member_zone in candidates):
        return member_zone
    return candidates[0] if candidates else "UTC"


async def apply_group_updated(
    session: AsyncSession, event: GroupUpdated, event_id: uuid.UUID, zones: Mapping[str, str]
) -> None:
    """Replace the group's window, zone and members (whatever source had put them there),
    and record one `group.changed` for the trade dates of the old and new windows. Its
    end is exclusive: the instant the group becomes inactive (Leap's rule)."""
    zone = await group_zone(session, event, zones)
    days = covered_days(
        event.start_date_time, event.end_date_time, ZoneInfo(zone), end_inclusive=False
    )
    # The group's lock first (replace_group takes it again): the days its old memberships
    # covered must be read under it, so the change names every day whose roster moved.
    await locks.transaction_lock_on(session, f"market_group:{event.market_group_id}")
    before = await repository.day_span(session, event.market_group_id)
    await repository.replace_group(
        session,
        event.market_group_id,
        event.market_group_name,
        (event.start_date_time, event.end_date_time),
        days,
        zone,
        event.meter_ids,
        event_id,
    )
    first, last = days if before is None else (min(days[0], before[0]), max(days[1], before[1]))
    await changes.record_group_change(session, event.market_group_id, first, last)
