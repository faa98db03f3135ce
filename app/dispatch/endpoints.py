"""Dispatches for the partner's asset services: what must act, and when."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from app.auth import ReadScope
from app.deps import ReadsDep, SessionDep, json_answer
from app.dispatch import queries
from app.dispatch.queries import DispatchFilter
from app.dispatch.schemas import (
    DispatchDetail,
    DispatchMeterPage,
    DispatchPage,
    PartnerDispatchPage,
)
from app.params import IsoDateTime, QueryBool, QueryInt, id_cursor, single_valued
from app.partners.endpoints import STORABLE_REFERENCE
from app.problems import Problem, problem_responses

router = APIRouter(tags=["dispatch"], dependencies=[Depends(single_valued)])

Kind = Annotated[
    Literal["group", "meter"] | None,
    Query(description="Which kind, when Leap used one id for both (its examples do)."),
]
_FILTERS_DOC = (
    "`start` / `end` (ISO 8601 instants) select timeslots overlapping `[start, end)`; "
    "`meter_id` matches meter dispatches of that meter and group dispatches listing it; "
    "cancelled timeslots only with `include_cancelled=true`, Leap's integration-test "
    "notifications only with `include_tests=true`. Ordered by start time; pass "
    "`next_cursor` back as `cursor` for the next page."
)


CURSOR = "`next_cursor` of the previous page"
DISPATCH_EVENT_ID = Path(
    description="Leap's `market_group_event_id` or `meter_event_id` of the timeslot",
    examples=["5f0c2d7e-3b4a-4e8f-9c1d-2a6b7e8f9a0b"],
)
REFERENCE = Path(
    min_length=1,
    max_length=65_536,
    pattern=STORABLE_REFERENCE,
    description="The partner's own asset reference, as Leap sent it",
    examples=["acme-site-0042"],
)


# An async function, not a class: FastAPI runs a class (a plain callable) as a dependency
# in its thread pool, one thread hop per request.
async def _filters(
    start: Annotated[
        IsoDateTime | None,
        Query(
            description="Timeslots ending after this instant (ISO 8601 with zone)",
            examples=["2025-08-14T00:00:00Z"],
        ),
    ] = None,
    end: Annotated[
        IsoDateTime | None,
        Query(
            description="Timeslots starting before this instant (ISO 8601 with zone)",
            examples=["2025-08-16T00:00:00Z"],
        ),
    ] = None,
    include_cancelled: Annotated[
        QueryBool, Query(description="Also list timeslots Leap cancelled")
    ] = False,
    include_tests: Annotated[
        QueryBool, Query(description="Also list Leap's integration-test notifications")
    ] = False,
    limit: Annotated[
        QueryInt, Query(ge=1, le=1000, description="Timeslots per page", examples=[100])
    ] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description=CURSOR)] = None,
) -> DispatchFilter:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise Problem(422, f"{name} must carry a time zone (e.g. Z)")
    if start is not None and end is not None and end < start:
        raise Problem(422, "end is before start")
    return DispatchFilter(
        start=start,
        end=end,
        include_cancelled=include_cancelled,
        include_tests=include_tests,
        limit=limit,
        cursor=cursor,
    )


Filters = Annotated[DispatchFilter, Depends(_filters)]


@router.get(
    "/v1/dispatches",
    summary="List dispatch timeslots",
    description=_FILTERS_DOC,
    response_model=DispatchPage,
    responses=problem_responses(401, 403, 422),
)
async def list_dispatches(
    reads: ReadsDep,
    _: ReadScope,
    filters: Filters,
    market_group_id: Annotated[
        uuid.UUID | None,
        Query(
            description="Group dispatches of this market group",
            examples=["406720c2-0175-4137-9ff1-1641702292d4"],
        ),
    ] = None,
    meter_id: Annotated[
        uuid.UUID | None,
        Query(
            description="Meter dispatches of this meter and group dispatches listing it",
            examples=["5b6c1f0e-8d2a-4b7e-9a51-3c9e2d7f4a10"],
        ),
    ] = None,
    partner_reference: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=65_536,
            pattern=STORABLE_REFERENCE,
            description="Timeslots involving this reference's meters",
            examples=["acme-site-0042"],
        ),
    ] = None,
) -> Response:
    chosen = replace(
        filters,
        market_group_id=market_group_id,
        meter_id=meter_id,
        partner_reference=partner_reference,
    )
    return json_answer(await queries.list_dispatches(reads, chosen))


@router.get(
    "/v1/dispatches/{dispatch_event_id}",
    summary="One dispatch timeslot, with its drift",
    description=(
        "The timeslot and, for a group dispatch, the check of Leap's meter list against our "
        "roster of that group on the timeslot's trade date: `leap_only` (dispatched, not in "
        "our roster) and `local_only` (in our roster, not dispatched)."
    ),
    response_model=DispatchDetail,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_dispatch(
    dispatch_event_id: Annotated[uuid.UUID, DISPATCH_EVENT_ID],
    session: SessionDep,
    _: ReadScope,
    kind: Kind = None,
) -> DispatchDetail:
    return await queries.get_dispatch(session, dispatch_event_id, kind)


@router.get(
    "/v1/dispatches/{dispatch_event_id}/meters",
    summary="Who must act: the dispatch's meters and their partner_reference",
    description=(
        "Leap's meter list for the timeslot in meter_id order, each with its "
        "partner_reference (null when the meter is not known here). Pass `next_cursor` "
        "back as `cursor`."
    ),
    response_model=DispatchMeterPage,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_dispatch_meters(
    dispatch_event_id: Annotated[uuid.UUID, DISPATCH_EVENT_ID],
    session: SessionDep,
    _: ReadScope,
    kind: Kind = None,
    cursor: Annotated[str | None, Query(max_length=64, description=CURSOR)] = None,
    limit: Annotated[
        QueryInt, Query(ge=1, le=100_000, description="Meters per page", examples=[10_000])
    ] = 10_000,
) -> DispatchMeterPage:
    after = id_cursor(cursor)
    return await queries.dispatch_meters(session, dispatch_event_id, kind, after, limit)


@router.get(
    "/v1/partner-references/{partner_reference}/dispatches",
    summary="What a partner reference's meters must do, and when",
    description="The timeslots involving the reference's meters. " + _FILTERS_DOC,
    response_model=PartnerDispatchPage,
    responses=problem_responses(401, 403, 422),
)
async def partner_dispatches(
    partner_reference: Annotated[str, REFERENCE],
    reads: ReadsDep,
    _: ReadScope,
    filters: Filters,
) -> Response:
    chosen = replace(filters, partner_reference=partner_reference)
    page = await queries.list_dispatches(reads, chosen)
    return json_answer(
        PartnerDispatchPage(
            partner_reference=partner_reference, items=page.items, next_cursor=page.next_cursor
        )
    )
