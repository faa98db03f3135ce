"""The ops view of the event log. (Leap's deliveries: app/webhooks/receiver.py.)"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from app import examples
from app.auth import OpsScope, ReadScope
from app.deps import SessionDep
from app.params import QueryInt, single_valued
from app.problems import Problem, problem_responses
from app.webhooks import repository
from app.webhooks.queries import event_detail, event_page, events_per_minute, parse_statuses
from app.webhooks.retry import replay
from app.webhooks.schemas import EventDetail, EventPage, EventRate

router = APIRouter(dependencies=[Depends(single_valued)])
EVENT_ID = Path(
    description="Leap's webhook_event_id", examples=["0f8e6d4c-2b1a-4c3d-9e8f-7a6b5c4d3e2f"]
)


@router.get(
    "/v1/webhook-events",
    tags=["ops"],
    summary="List stored webhook events",
    description="The event log, oldest first, filtered by status and type. Scope `ops`.",
    response_model=EventPage,
    responses={
        **examples.example_response(200, examples.EVENT_PAGE),
        **problem_responses(401, 403, 422),
    },
)
async def list_webhook_events(
    session: SessionDep,
    _: OpsScope,
    status: Annotated[
        str | None,
        Query(
            max_length=100,
            description=(
                "One status or several separated by commas, e.g. `failed,dead`: "
                "received, applied, failed, ignored, dead (docs/operations.md says what "
                "each means and what to do)."
            ),
            examples=["failed,dead"],
        ),
    ] = None,
    type: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9._\-]{1,128}$",
            description="Only events of this Leap event type",
            examples=["meter.created"],
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9]{1,18}$",
            description="The `next_cursor` of the previous page (an opaque string); omit for "
            "the first page",
        ),
    ] = None,
    limit: Annotated[
        QueryInt, Query(ge=1, le=1000, description="Events per page", examples=[100])
    ] = 100,
) -> EventPage:
    try:
        statuses = parse_statuses(status) if status is not None else None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    after = int(cursor) if cursor is not None else None
    return await event_page(session, statuses=statuses, event_type=type, cursor=after, limit=limit)


# Declared before /{webhook_event_id} so the path is not read as an id.
@router.get(
    "/v1/webhook-events/per-minute",
    tags=["ops"],
    summary="Events received per minute",
    description=(
        "How many webhook deliveries were stored in each minute of the last `hours` (UTC "
        "minutes, zeros included, oldest first): the chart of the status page. Counts only, "
        "so scope `read` is enough."
    ),
    response_model=EventRate,
    responses=problem_responses(401, 403, 422),
)
async def get_events_per_minute(
    session: SessionDep,
    _: ReadScope,
    hours: Annotated[
        QueryInt,
        Query(ge=1, le=24, description="How many hours back to count", examples=[3]),
    ] = 3,
) -> EventRate:
    return await events_per_minute(session, hours)


@router.get(
    "/v1/webhook-events/{webhook_event_id}",
    tags=["ops"],
    summary="One stored webhook event, with its raw body",
    description=(
        "Status, error, attempts, duplicate and conflicting deliveries, and the body: "
        "`body_json` is the body parsed when it is JSON, `body` the text as delivered "
        "(both null once pruned by retention). Scope `ops`."
    ),
    response_model=EventDetail,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_webhook_event(
    webhook_event_id: Annotated[uuid.UUID, EVENT_ID], session: SessionDep, _: OpsScope
) -> EventDetail:
    event = await repository.get(session, webhook_event_id)
    if event is None:
        raise Problem(404, "no webhook event with this id")
    return event_detail(event)


@router.post(
    "/v1/webhook-events/{webhook_event_id}/replay",
    tags=["ops"],
    summary="Apply a stored webhook event again",
    description=(
        "Re-applies the stored body (meant for failed or dead events). The answer is the "
        "event afterwards: `applied`, or still `failed`/`dead` with the error. Scope `ops`."
    ),
    response_model=EventDetail,
    responses=problem_responses(401, 403, 404, 422),
)
async def replay_webhook_event(
    webhook_event_id: Annotated[uuid.UUID, EVENT_ID],
    session: SessionDep,
    request: Request,
    _: OpsScope,
) -> EventDetail:
    # The receiver's options know every surface's stored events (dispatch too).
    event = await replay(session, webhook_event_id, request.app.state.receiver.options)
    if event is None:
        raise Problem(404, "no webhook event with this id")
    return event_detail(event)
