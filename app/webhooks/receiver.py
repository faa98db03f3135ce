"""POST /webhooks/leap: Leap's deliveries, on the service's hot path.

One plain Starlette route, registered once (`mount`): the receiver uses none of FastAPI's
per-request dependency machinery, which cost ~15% of its CPU (docs/benchmarks.md). It is
documented in OpenAPI by `OPERATION`. Everything it needs is one `Receiver`, built in the
app's lifespan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import metrics
from app.auth import secret_matches
from app.config import Settings
from app.outage import outage
from app.problems import problem_response, problem_responses
from app.webhooks.body import BodyRefused, SenderGone, read_body
from app.webhooks.schemas import ReceiptOut
from app.webhooks.service import (
    ApplyOptions,
    Inbox,
    Reapplier,
    Receipt,
    Rejected,
    Unavailable,
    receive,
)

log = logging.getLogger("meter_sync.webhooks")

PATH = "/webhooks/leap"
_ENCODINGS = (
    " The body may be sent with `Content-Encoding: gzip`: the size limit applies to the "
    "decompressed body. Other content codings are a 415."
)
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
    def build(
        cls, settings: Settings, inbox: Inbox, reappliers: Mapping[str, Reapplier]
    ) -> Receiver:
        return cls(
            header=settings.leap_webhook_header.lower().encode("latin-1"),
            secrets=tuple(
                s.get_secret_value().encode("utf-8") for s in settings.leap_webhook_secrets
            ),
            max_body_bytes=settings.webhook_max_body_bytes,
            options=ApplyOptions.of(settings, reappliers),
            inbox=inbox,
        )

    def authorized(self, request: Request) -> bool:
        presented = next((v for k, v in request.scope["headers"] if k == self.header), None)
        return presented is not None and secret_matches(presented, self.secrets)


def _refused(outcome: str, started: float, status: int, detail: str, **kw: Any) -> JSONResponse:
    metrics.observe_delivery("unknown", outcome, time.perf_counter() - started, status)
    return problem_response(status, detail, **kw)


async def read_delivery(request: Request, receiver: Receiver, started: float) -> bytes | Response:
    """The raw (decoded) body of an authorized JSON delivery within the limits, or the
    refusal to answer (401, 413, 415, 400, 408). Shared by every Leap surface (events,
    dispatch); the body rules are app/webhooks/body.py."""
    if not receiver.authorized(request):
        # One body for every auth failure: nothing tells a prober what was wrong.
        return _refused("unauthorized", started, 401, "webhook secret missing or not accepted")
    try:
        return await read_body(request, receiver.max_body_bytes)
    except SenderGone as gone:
        # Nobody reads this answer; counted under 499 (client closed), as proxies log it.
        log.warning("delivery sender disconnected before the body was complete")
        metrics.observe_delivery("unknown", gone.outcome, time.perf_counter() - started, 499)
        return Response(status_code=400)
    except BodyRefused as refused:
        return _refused(refused.outcome, started, refused.status, refused.detail)


async def answer(work: Awaitable[Receipt], started: float, surface: str) -> Response:
    """Run the store-and-apply of a delivery and turn its outcome into the answer."""
    try:
        receipt = await work
    except Rejected as exc:
        extra: dict[str, Any] = {"errors": exc.errors} if exc.errors else {}
        return _refused("invalid", started, exc.status, exc.detail, **extra)
    except Unavailable as exc:
        # Logged once per outage (app/outage.py), not once per refused delivery.
        reason = outage.failed(exc.__cause__ or exc)
        return _refused(
            "unavailable",
            started,
            503,
            f"database unavailable: {reason}",
            headers={"Retry-After": "5"},
        )
    outage.up()
    event_id = str(receipt.webhook_event_id)
    if receipt.conflicting:
        log.warning(
            "%s redelivered with a different body; the first one is kept",
            surface,
            extra={"webhook_event_id": event_id, "type": receipt.event_type},
        )
        metrics.conflicting_delivery()
    log.info(
        "%s %s",
        surface,
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


async def receive_webhook(request: Request) -> Response:
    started = time.perf_counter()
    receiver: Receiver = request.app.state.receiver
    raw = await read_delivery(request, receiver, started)
    if isinstance(raw, Response):
        return raw
    return await answer(receive(receiver.inbox, raw, receiver.options), started, "webhook")


def operation(summary: str, description: str, operation_id: str) -> dict[str, Any]:
    """The OpenAPI operation of a Leap delivery route (documented, not routed, by FastAPI)."""
    receipt = ReceiptOut.model_json_schema()
    answers = {
        str(code): {
            "description": description,
            "content": {
                "application/json": {
                    "schema": receipt,
                    "example": {
                        "webhook_event_id": "0f8e6d4c-2b1a-4c3d-9e8f-7a6b5c4d3e2f",
                        "status": status,
                    },
                }
            },
        }
        for code, description, status in (
            ("202", "Stored and applied (status accepted, ignored or failed)", "accepted"),
            ("200", "Duplicate delivery: already stored, nothing repeated", "duplicate"),
        )
    }
    problems = {
        str(k): v for k, v in problem_responses(400, 401, 408, 413, 415, 422, 500, 503).items()
    }
    return {
        "tags": ["webhooks"],
        "summary": summary,
        "operationId": operation_id,
        "description": description + _ENCODINGS,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {**answers, **problems},
    }


def mount_delivery_route(
    app: FastAPI,
    path: str,
    endpoint: Callable[[Request], Awaitable[Response]],
    documented: dict[str, Any],
) -> None:
    """Register a delivery route once, as a plain Starlette route, and its operation in
    the OpenAPI document."""

    async def guarded(request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await endpoint(request)
        except Exception:
            # Every condition a receiver knows answers without raising: this is a bug. It
            # is still one counted answer (a 500, so Leap retries) and one traceback.
            log.exception("delivery receiver failed unexpectedly", extra={"path": path})
            return _refused("error", started, 500, "internal error")

    app.add_route(path, guarded, methods=["POST"], include_in_schema=False)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        document.setdefault("paths", {}).setdefault(path, {})["post"] = documented
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def mount(app: FastAPI) -> None:
    mount_delivery_route(
        app,
        PATH,
        receive_webhook,
        operation(
            "Receive a Leap webhook delivery",
            "Leap's general webhook platform posts `{webhook_event_id, payload}` here with "
            "the shared secret in the configured header. The event is stored and applied "
            "before the answer: 202 accepted (or ignored for unknown types), 200 for an id "
            "already stored.",
            "receive_leap_webhook",
        ),
    )
