"""Market-group rosters for dispatch."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from app.auth import ReadScope
from app.db import SessionDep
from app.deps import SettingsDep
from app.groups import queries
from app.groups.schemas import RosterOut
from app.problems import problem_responses

router = APIRouter(prefix="/v1/groups", tags=["groups"])


@router.get(
    "/{market_group_id}/meters",
    summary="A market group's roster on a trade date",
    description=(
        "The meters in the group on `trade_date` (default: today in the group's market), "
        "ordered by meter_id; pass `next_cursor` back as `cursor` for the next page."
    ),
    response_model=RosterOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_roster(
    market_group_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    _: ReadScope,
    trade_date: date | None = None,
    cursor: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> RosterOut:
    return await queries.roster(session, settings, market_group_id, trade_date, cursor, limit)
