"""What group.updated does: the group's roster for its window becomes exactly the list."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.groups import repository
from app.leap.events import GroupUpdated


async def apply_group_updated(session: AsyncSession, event: GroupUpdated) -> None:
    await repository.upsert_group(session, event.market_group_id, event.market_group_name)
    await repository.replace_window_members(
        session,
        event.market_group_id,
        event.start_date_time,
        event.end_date_time,
        event.meter_ids,
    )
