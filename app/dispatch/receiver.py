"""POST /webhooks/leap/dispatch — Leap's dispatch notifications.

Same secret header and answer table as the event receiver, whose checks are reused
as they are. A dispatch body carries no event id, so its id in the event log is the UUID
made of the first 16 bytes of its SHA-256: the same body again is a duplicate (200).
The body is stored and its timeslots applied in one transaction before the 2xx; an
apply failure still stores the body (failed, retried by the worker, replayable).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app import logs, metrics
from app.dispatch import service
from app.leap.dispatch import notification_type, parse_notification
from app.problems import problem_responses
from app.webhooks import parsing
from app.webhooks import repository as inbox_repository
from app.webhooks.endpoints import _authorized, _is_json, _read_body, _refused, _TooLarge
from app.webhooks.schemas import ReceiptOut
from app.webhooks.service import (
    STORE_DEADLINE_S,
    Inbox,
    Receipt,
    Rejected,
    Unavailable,
    _Delivery,
    _error_text,
    _reraise_if_unavailable,
    field_errors,
)

log = logging.getLogger("meter_sync.dispatch")
router = APIRouter()
_STATUS_CODES = {"accepted": 202, "failed": 202, "duplicate": 200}


def body_event_id(raw: bytes) -> uuid.UUID:
    """The event-log id of a dispatch body: its SHA-256's first 16 bytes."""
    return uuid.UUID(bytes=hashlib.sha256(raw).digest()[:16])


async def _store_and_apply(
    delivery: _Delivery, body: Any, *, refresh: bool, zones: Mapping[str, str]
) -> Receipt:
    try:
        note = parse_notification(delivery.event_type, body)
    except ValidationError as exc:
        errors = field_errors(exc)
        await delivery.store_only("dead", error=_error_text(errors))
        raise Rejected(422, "body does not match Leap's dispatch schema", errors) from None
    async with delivery.inbox.sessions() as session:
        try:
            stored = await inbox_repository.insert(
                session,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                status="applied",
                body=delivery.raw,
                sha=delivery.sha,
            )
            if not stored:
                receipt = await delivery._duplicate(session)
                await session.commit()
                return receipt
            applied = await service.apply_notification(
                session, note, webhook_event_id=delivery.event_id, refresh=refresh, zones=zones
            )
            await session.commit()
        except Exception as exc:
            await session.rollback()
            _reraise_if_unavailable(exc)
            failure = exc
        else:
            service.report(applied)
            return Receipt(delivery.event_id, delivery.event_type, "accepted")
    return await delivery._store_failed(failure, None, None)


async def receive(inbox: Inbox, raw: bytes, *, refresh: bool, zones: Mapping[str, str]) -> Receipt:
    try:
        body = parsing.decode(raw)
    except parsing.BadBody as exc:
        raise Rejected(400, str(exc)) from None
    try:
        event_type = notification_type(body)
    except ValueError as exc:
        raise Rejected(422, str(exc)) from None
    sha = hashlib.sha256(raw).digest()
    event_id = uuid.UUID(bytes=sha[:16])
    logs.webhook_event_id.set(event_id)
    delivery = _Delivery(inbox, event_id, event_type, raw, sha)
    try:
        async with asyncio.timeout(STORE_DEADLINE_S):
            return await _store_and_apply(delivery, body, refresh=refresh, zones=zones)
    except (Rejected, Unavailable):
        raise
    except Exception as exc:
        _reraise_if_unavailable(exc)
        raise


@router.post(
    "/webhooks/leap/dispatch",
    tags=["webhooks"],
    summary="Receive a Leap dispatch notification",
    description=(
        "Leap's dispatch webhooks (meter and group) post `{meter_dispatches: [...]}` or "
        "`{group_dispatches: [...]}` here with the shared secret in the configured header. "
        "Each timeslot is upserted by `meter_event_id` / `market_group_event_id`; a group "
        "dispatch's meter list is checked against the local roster. The body is kept in the "
        "event log under the UUID of its SHA-256's first 16 bytes (type `dispatch.meter` or "
        "`dispatch.group`): 202 accepted, 200 for the same body again."
    ),
    status_code=202,
    response_model=ReceiptOut,
    responses={
        200: {"description": "The same body was already stored: nothing repeated"},
        **problem_responses(400, 401, 408, 413, 415, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def receive_dispatch(request: Request) -> JSONResponse:
    started = time.perf_counter()
    settings = request.app.state.settings
    if not _authorized(request):
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
            request.app.state.inbox,
            raw,
            refresh=settings.api_mode == "api",
            zones=settings.market_timezones,
        )
    except Rejected as exc:
        extra: dict[str, Any] = {"errors": exc.errors} if exc.errors else {}
        return _refused("invalid", started, exc.status, exc.detail, **extra)
    except Unavailable:
        log.warning("dispatch refused: database unavailable")
        return _refused(
            "unavailable", started, 503, "database unavailable", headers={"Retry-After": "5"}
        )
    log.info(
        "dispatch %s",
        receipt.outcome,
        extra={"webhook_event_id": str(receipt.webhook_event_id), "type": receipt.event_type},
    )
    body = ReceiptOut(webhook_event_id=receipt.webhook_event_id, status=receipt.outcome)
    metrics.observe_delivery(receipt.event_type, receipt.outcome, time.perf_counter() - started)
    return JSONResponse(body.model_dump(mode="json"), status_code=_STATUS_CODES[receipt.outcome])
