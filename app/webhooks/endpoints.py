"""POST /webhooks/leap — Leap's deliveries — and the ops view of the event log."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from app import metrics
from app.auth import OpsScope, secret_matches
from app.config import ApiMode
from app.deps import SessionDep, SettingsDep
from app.params import QueryInt, single_valued
from app.problems import Problem, problem_response, problem_responses
from app.webhooks import repository
from app.webhooks.retry import replay
from app.webhooks.schemas import ReceiptOut
from app.webhooks.service import Rejected, Unavailable, receive
from app.webhooks.views import EventDetail, EventPage, event_detail, event_page

log = logging.getLogger("meter_sync.webhooks")
router = APIRouter(dependencies=[Depends(single_valued)])

# A body that trickles in slower than this is refused rather than waited on forever.
BODY_READ_TIMEOUT_S = 10.0
_STATUS_CODES = {"accepted": 202, "ignored": 202, "failed": 202, "duplicate": 200}


class _TooLarge(Exception):
    pass


def _refused(outcome: str, started: float, status: int, detail: str, **kw: Any) -> JSONResponse:
    metrics.observe_delivery("unknown", outcome, time.perf_counter() - started)
    return problem_response(status, detail, **kw)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(BODY_READ_TIMEOUT_S):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def _authorized(request: Request) -> bool:
    header = request.app.state.settings.leap_webhook_header.lower().encode("latin-1")
    presented = next((v for k, v in request.scope["headers"] if k == header), None)
    if presented is None:
        return False
    return secret_matches(presented, request.app.state.webhook_secrets)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


@router.post(
    "/webhooks/leap",
    tags=["webhooks"],
    summary="Receive a Leap webhook delivery",
    description=(
        "Leap's general webhook platform posts `{webhook_event_id, payload}` here with the "
        "shared secret in the configured header. The event is stored and applied before the "
        "answer: 202 accepted (or ignored for unknown types), 200 for an id already stored."
    ),
    status_code=202,
    response_model=ReceiptOut,
    responses={
        200: {"description": "Duplicate delivery: already stored, nothing repeated"},
        **problem_responses(400, 401, 408, 413, 415, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def receive_webhook(request: Request) -> JSONResponse:
    started = time.perf_counter()
    settings = request.app.state.settings
    if not _authorized(request):
        # One body for every auth failure: nothing tells a prober what was wrong.
        return _refused("unauthorized", started, 401, "webhook secret missing or not accepted")
    limit: int = settings.webhook_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        if declared.isdigit():
            return _refused("too_large", started, 413, f"body larger than {limit} bytes")
        return _refused("invalid", started, 400, "invalid Content-Length")
    if not _is_json(request.headers.get("content-type")):
        return _refused("invalid", started, 415, "body must be application/json")
    try:
        raw = await _read_body(request, limit)
    except _TooLarge:
        return _refused("too_large", started, 413, f"body larger than {limit} bytes")
    except TimeoutError:
        return _refused("invalid", started, 408, "body not received in time")
    try:
        receipt = await receive(
            request.app.state.inbox, raw, refresh=settings.api_mode == ApiMode.API
        )
    except Rejected as exc:
        extra: dict[str, Any] = {"errors": exc.errors} if exc.errors else {}
        return _refused("invalid", started, exc.status, exc.detail, **extra)
    except Unavailable:
        log.warning("webhook refused: database unavailable")
        return _refused(
            "unavailable", started, 503, "database unavailable", headers={"Retry-After": "5"}
        )
    log.info(
        "webhook %s",
        receipt.outcome,
        extra={"webhook_event_id": str(receipt.webhook_event_id), "type": receipt.event_type},
    )
    body = ReceiptOut(webhook_event_id=receipt.webhook_event_id, status=receipt.outcome)
    response = JSONResponse(
        body.model_dump(mode="json"), status_code=_STATUS_CODES[receipt.outcome]
    )
    metrics.observe_delivery(receipt.event_type, receipt.outcome, time.perf_counter() - started)
    return response


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
    status: Annotated[str | None, Query(pattern="^(received|applied|failed|ignored|dead)$")] = None,
    type: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._\-]{1,128}$")] = None,
    cursor: Annotated[QueryInt | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[QueryInt, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    return await event_page(session, status=status, event_type=type, cursor=cursor, limit=limit)


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
    event = await replay(session, webhook_event_id, refresh=settings.api_mode == ApiMode.API)
    if event is None:
        raise Problem(404, "no webhook event with this id")
    return event_detail(event)
