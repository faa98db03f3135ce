"""POST /webhooks/leap: Leap's deliveries, on the service's hot path.

One plain Starlette route, registered once (`mount`): the receiver uses none of FastAPI's
per-request dependency machinery, which cost ~15% of its CPU (docs/benchmarks.md). It is
documented in OpenAPI by `OPERATION`. Everything it needs is one `Receiver`, built in the
app's lifespan.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import metrics
from app.auth import secret_matches
from app.config import Settings
from app.problems import problem_response, problem_responses
from app.webhooks.body import BodyRefused, SenderGone, read_body
from app.webhooks.schemas import ReceiptOut
from app.webhooks.service import ApplyOptions, Inbox, Rejected, Unavailable, receive

log = logging.getLogger("meter_sync.webhooks")

PATH = "/webhooks/leap"
_STATUS_CODES = {"accepted": 202, "ignored": 202, "failed": 202, "duplicate": 200}


@dataclass(frozen=True, slots=True)
class Receiver:
    """What the receiver needs: the secret header and values, limits, and the inbox."""

    header: bytes  # lower-case, as ASGI gives header names
    secrets: tuple[bytes, ...]
    max_body_bytes: int
    options: ApplyOptions
    inbox: Inbox

    @classmethod
    def build(cls, settings: Settings, inbox: Inbox) -> Receiver:
        return cls(
            header=settings.leap_webhook_header.lower().encode("latin-1"),
            secrets=tuple(
                s.get_secret_value().encode("utf-8") for s in settings.leap_webhook_secrets
            ),
            max_body_bytes=settings.webhook_max_body_bytes,
            options=ApplyOptions.of(settings),
            inbox=inbox,
        )

    def authorized(self, request: Request) -> bool:
        presented = next((v for k, v in request.scope["headers"] if k == self.header), None)
        return presented is not None and secret_matches(presented, self.secrets)


def _refused(outcome: str, started: float, status: int, detail: str, **kw: Any) -> JSONResponse:
    metrics.observe_delivery("unknown", outcome, time.perf_counter() - started, status)
    return problem_response(status, detail, **kw)


async def receive_webhook(request: Request) -> Response:
    started = time.perf_counter()
    try:
        return await _answer(request, started)
    except Exception:
        # Every condition the receiver knows answers in `_answer`; this is a bug. It is
        # still one counted answer (a 500, so Leap retries) and one logged traceback.
        log.exception("webhook receiver failed unexpectedly")
        return _refused("error", started, 500, "internal error")


async def _answer(request: Request, started: float) -> Response:
    receiver: Receiver = request.app.state.receiver
    if not receiver.authorized(request):
        # One body for every auth failure: nothing tells a prober what was wrong.
        return _refused("unauthorized", started, 401, "webhook secret missing or not accepted")
    try:
        raw = await read_body(request, receiver.max_body_bytes)
    except SenderGone as gone:
        # Nobody reads this answer; counted under 499 (client closed), as proxies log it.
        log.warning("webhook sender disconnected before the body was complete")
        metrics.observe_delivery("unknown", gone.outcome, time.perf_counter() - started, 499)
        return Response(status_code=400)
    except BodyRefused as refused:
        return _refused(refused.outcome, started, refused.status, refused.detail)
    try:
        receipt = await receive(receiver.inbox, raw, receiver.options)
    except Rejected as exc:
        extra: dict[str, Any] = {"errors": exc.errors} if exc.errors else {}
        return _refused("invalid", started, exc.status, exc.detail, **extra)
    except Unavailable:
        log.warning("webhook refused: database unavailable")
        return _refused(
            "unavailable", started, 503, "database unavailable", headers={"Retry-After": "5"}
        )
    event_id = str(receipt.webhook_event_id)
    if receipt.conflicting:
        log.warning(
            "webhook redelivered with a different body; the first one is kept",
            extra={"webhook_event_id": event_id, "type": receipt.event_type},
        )
        metrics.conflicting_delivery()
    log.info(
        "webhook %s",
        receipt.outcome,
        extra={"webhook_event_id": event_id, "type": receipt.event_type},
    )
    body = ReceiptOut(webhook_event_id=receipt.webhook_event_id, status=receipt.outcome)
    status = _STATUS_CODES[receipt.outcome]
    response = JSONResponse(body.model_dump(mode="json"), status_code=status)
    metrics.observe_delivery(
        receipt.event_type, receipt.outcome, time.perf_counter() - started, status
    )
    return response


def _operation() -> dict[str, Any]:
    receipt = ReceiptOut.model_json_schema()
    answers = {
        str(code): {
            "description": description,
            "content": {"application/json": {"schema": receipt}},
        }
        for code, description in (
            ("202", "Stored and applied (status accepted, ignored or failed)"),
            ("200", "Duplicate delivery: already stored, nothing repeated"),
        )
    }
    problems = {
        str(k): v for k, v in problem_responses(400, 401, 408, 413, 415, 422, 500, 503).items()
    }
    return {
        "tags": ["webhooks"],
        "summary": "Receive a Leap webhook delivery",
        "operationId": "receive_leap_webhook",
        "description": (
            "Leap's general webhook platform posts `{webhook_event_id, payload}` here with "
            "the shared secret in the configured header. The event is stored and applied "
            "before the answer: 202 accepted (or ignored for unknown types), 200 for an id "
            "already stored. The body may be sent with `Content-Encoding: gzip`; the size "
            "limit applies to the decompressed body. Other content codings are a 415."
        ),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {**answers, **problems},
    }


def mount(app: FastAPI) -> None:
    """Register the receiver's route, and its operation in the OpenAPI document."""
    app.add_route(PATH, receive_webhook, methods=["POST"], include_in_schema=False)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        document.setdefault("paths", {}).setdefault(PATH, {})["post"] = _operation()
        return document

    app.openapi = openapi  # type: ignore[method-assign]
