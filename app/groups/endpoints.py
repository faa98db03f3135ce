"""Market-group rosters for dispatch."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from app.auth import ReadScope
from app.deps import SessionDep
from app.groups import queries
from app.groups.schemas import GroupsOut, RosterOut
from app.params import IsoDate, QueryInt, single_valued
from app.problems import problem_responses

router = APIRouter(prefix="/v1/groups", tags=["groups"], dependencies=[Depends(single_valued)])


@router.get(
    "",
    summary="Market groups and their size on a trade date",
    description=(
        "Every market group with at least one meter on `trade_date` (default: today in "
        "each group's own market zone), with its roster size: each meter counts in the one "
        "group that wins its trade date, archived meters are left out, as in the roster."
    ),
    response_model=GroupsOut,
    responses=problem_responses(401, 403, 422),
)
async def list_groups(
    session: SessionDep, _: ReadScope, trade_date: IsoDate | None = None
) -> GroupsOut:
    return await queries.group_counts(session, trade_date)


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
    _: ReadScope,
    trade_date: IsoDate | None = None,
    cursor: uuid.UUID | None = None,
    limit: Annotated[QueryInt, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    # The JSON is built by PostgreSQL and returned as is (shape = RosterOut): validating
    # and serializing 100k members in Python cost more than the query.
    body = await queries.roster(session, market_group_id, trade_date, cursor, limit)
    return Response(body, media_type="application/json")
