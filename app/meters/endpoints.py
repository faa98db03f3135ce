"""Meter lookups for internal services."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from app.auth import ReadScope
from app.deps import ReadsDep, SettingsDep, json_answer
from app.meters import queries
from app.meters.schemas import (
    EnrollmentView,
    MeterListQuery,
    MeterOut,
    MeterPage,
    ParticipationOut,
)
from app.params import IsoDate, single_valued
from app.problems import problem_responses

router = APIRouter(prefix="/v1/meters", tags=["meters"], dependencies=[Depends(single_valued)])
ERRORS = problem_responses(401, 403, 404, 422)
METER_ID = Path(description="Leap's meter id", examples=["5b6c1f0e-8d2a-4b7e-9a51-3c9e2d7f4a10"])


@router.get(
    "",
    summary="List meters",
    description=(
        "Meters matching every filter given, in `meter_id` order, `limit` per page (at most "
        "1000). Pass `next_cursor` back as `cursor` for the next page; it is null on the last "
        "one. A walk returns every meter that matches throughout exactly once, even while "
        "meters change between pages. `market_group_id` and `trade_date` go together: the "
        "group that wins each meter's trade date, as in the roster (archived meters too, "
        "unless `is_archived=false`). For incremental copies, pass as `updated_since` the "
        "time your previous walk started."
    ),
    response_model=MeterPage,
    responses=problem_responses(401, 403, 422),
)
async def list_meters(
    query: Annotated[MeterListQuery, Query()],
    reads: ReadsDep,
    _: ReadScope,
) -> Response:
    return json_answer(await queries.list_meters(reads, query))


@router.get(
    "/{meter_id}",
    summary="One meter",
    description="Grid, utility, location, enrollment summary, today's group and timestamps.",
    response_model=MeterOut,
    responses=ERRORS,
)
async def get_meter(
    meter_id: Annotated[uuid.UUID, METER_ID],
    reads: ReadsDep,
    settings: SettingsDep,
    _: ReadScope,
) -> Response:
    return json_answer(await queries.get_meter(reads, settings, meter_id))


@router.get(
    "/{meter_id}/enrollment",
    summary="A meter's enrollment view",
    description="Status, active and eligible spans, open reasons, programs and preferences.",
    response_model=EnrollmentView,
    responses=ERRORS,
)
async def get_meter_enrollment(
    meter_id: Annotated[uuid.UUID, METER_ID],
    reads: ReadsDep,
    settings: SettingsDep,
    _: ReadScope,
) -> Response:
    return json_answer(await queries.get_enrollment(reads, settings, meter_id))


@router.get(
    "/{meter_id}/participation",
    summary="A meter's market group per trade date",
    description=(
        "One row per trade date from `from` to `to` (inclusive, `YYYY-MM-DD`, in the meter's "
        "market time zone); by default the current trade date and the next two."
    ),
    response_model=ParticipationOut,
    responses=ERRORS,
)
async def get_meter_participation(
    meter_id: Annotated[uuid.UUID, METER_ID],
    reads: ReadsDep,
    settings: SettingsDep,
    _: ReadScope,
    first: Annotated[
        IsoDate | None,
        Query(
            alias="from",
            description="First trade date `YYYY-MM-DD` (default: the current one)",
            examples=["2025-08-14"],
        ),
    ] = None,
    last: Annotated[
        IsoDate | None,
        Query(
            alias="to",
            description="Last trade date `YYYY-MM-DD`, inclusive (default: two after `from`)",
            examples=["2025-08-16"],
        ),
    ] = None,
) -> Response:
    return json_answer(await queries.get_participation(reads, settings, meter_id, first, last))
