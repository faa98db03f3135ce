"""The ops view of the event log. (Leap's deliveries: app/webhooks/receiver.py.)"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.auth import OpsScope
from app.deps import SessionDep, SettingsDep
from app.params import QueryInt, single_valued
from app.problems import Problem, problem_responses
from app.webhooks import repository
from app.webhooks.queries import event_detail, event_page, parse_statuses
from app.webhooks.retry import replay
from app.webhooks.schemas import EventDetail, EventPage
from app.webhooks.service import ApplyOptions

router = APIRouter(dependencies=[Depends(single_valued)])


@router.get(
    "/v1/webhook-events",
    tags=["ops"],
    summary="List stored webhook events",
    description="The event log, oldest first, filtered by status and type. Scope `ops`.",
    response_model=EventPage,
    responses=problem_responses(401, 403, 422),
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
    type: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._\-]{1,128}$")] = None,
    cursor: Annotated[QueryInt | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[QueryInt, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    try:
        statuses = parse_statuses(status) if status is not None else None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    return await event_page(session, statuses=statuses, event_type=type, cursor=cursor, limit=limit)


@router.get(
    "/v1/webhook-events/{webhook_event_id}",
    tags=["ops"],
    summary="One stored webhook event, with its raw body",
    description=(
        "Status, error, attempts, duplicate and conflicting deliveries, and the body as "
        "delivered (null once pruned by retention). Scope `ops`."
    ),
    response_model=EventDetail,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_webhook_event(
    webhook_event_id: uuid.UUID, session: SessionDep, _: OpsScope
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
    webhook_event_id: uuid.UUID, session: SessionDep, settings: SettingsDep, _: OpsScope
) -> EventDetail:
    event = await replay(session, webhook_event_id, ApplyOptions.of(settings))
    if event is None:
        raise Problem(404, "no webhook event with this id")
    return event_detail(event)
