"""Market-group rosters for dispatch."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from app.auth import ReadScope
from app.deps import SessionDep
from app.groups import queries
from app.groups.schemas import GroupsOut, RosterOut
from app.params import IsoDate, QueryInt, id_cursor, single_valued
from app.problems import problem_responses

router = APIRouter(prefix="/v1/groups", tags=["groups"], dependencies=[Depends(single_valued)])

TRADE_DATE = (
    "Trade date `YYYY-MM-DD`, a calendar day in the group's market zone (default: today there)"
)
CURSOR = "The `next_cursor` of the previous page (an opaque string); omit for the first page"
GROUP_ID = Path(
    description="Leap's market group id", examples=["406720c2-0175-4137-9ff1-1641702292d4"]
)


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
    session: SessionDep,
    _: ReadScope,
    trade_date: Annotated[
        IsoDate | None,
        Query(
            description="Trade date `YYYY-MM-DD` (default: today in each group's market zone)",
            examples=["2025-08-14"],
        ),
    ] = None,
) -> GroupsOut:
    return await queries.group_counts(session, trade_date)


@router.get(
    "/{market_group_id}/meters",
    summary="A market group's roster on a trade date",
    description=(
        "The meters in the group on `trade_date` (default: today in the group's market), "
        "ordered by meter_id, with the group's name; pass `next_cursor` back as `cursor` "
        "for the next page."
    ),
    response_model=RosterOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_group_roster(
    market_group_id: Annotated[uuid.UUID, GROUP_ID],
    session: SessionDep,
    _: ReadScope,
    trade_date: Annotated[
        IsoDate | None, Query(description=TRADE_DATE, examples=["2025-08-14"])
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64, description=CURSOR)] = None,
    limit: Annotated[
        QueryInt, Query(ge=1, le=100_000, description="Members per page", examples=[10_000])
    ] = 10_000,
) -> Response:
    after = id_cursor(cursor)
    # The JSON is built by PostgreSQL and returned as is (shape = RosterOut): validating
    # and serializing 100k members in Python cost more than the query.
    body = await queries.roster(session, market_group_id, trade_date, after, limit)
    return Response(body, media_type="application/json")
