"""POST /webhooks/leap: Leap's deliveries, on the service's hot path.

Each delivery route is a plain ASGI `DeliveryEndpoint`, and app/main.py sends a POST to
its path straight to it, ahead of FastAPI: the middleware stack, the route scan, and the
`Request`/`JSONResponse` objects cost about a third of the receiver's CPU (docs/decisions.md,
"Where the receiver's time goes"). So the endpoint adds itself what those middlewares add
to every answer: the request id (app/logs.py) and the security headers
(app/response_policy.py). The route is still registered with FastAPI (other methods get
their 405 there) and documented in OpenAPI by `operation`. Everything an endpoint needs is
one `Receiver`, built in the app's lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app import logs, metrics
from app.auth import secret_matches
from app.config import Settings
from app.outage import outage
from app.problems import problem_response, problem_responses
from app.response_policy import security_headers
from app.webhooks import body as bodies
from app.webhooks.body import BodyRefused, SenderGone, read_body
from app.webhooks.schemas import ReceiptOut
from app.webhooks.service import (
    STORE_DEADLINE_S,
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
# What ResponsePolicyMiddleware adds to a /webhooks/ answer (Cache-Control: no-store too).
_POLICY = security_headers(PATH)
_JSON = (b"content-type", b"application/json")

# An answer: status, headers (without the request id and policy headers), body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


@dataclass(frozen=True, slots=True)
class Receiver:
    """What the receiver needs: the secret header and values, limits, and the inbox."""

    header: bytes  # lower-case, as ASGI gives header names
    secrets: tuple[bytes, ...]
    max_body_bytes: int
    options: ApplyOptions
    inbox: Inbox
    loop: asyncio.AbstractEventLoop  # the serving loop (build runs in the app's lifespan)

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
            loop=asyncio.get_running_loop(),
        )

    def authorized(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        presented = next((v for k, v in headers if k == self.header), None)
        return presented is not None and secret_matches(presented, self.secrets)


def _refused(outcome: str, started: float, status: int, detail: str, **kw: Any) -> Answer:
    metrics.observe_delivery("unknown", outcome, time.perf_counter() - started, status)
    response = problem_response(status, detail, **kw)
    return status, response.raw_headers, bytes(response.body)


def _unavailable(exc: BaseException, started: float) -> Answer:
    # Logged once per outage (app/outage.py), not once per refused delivery.
    reason = outage.failed(exc.__cause__ or exc)
    return _refused(
        "unavailable", started, 503, f"database unavailable: {reason}", headers={"Retry-After": "5"}
    )


def _accepted(receipt: Receipt, started: float, surface: str) -> Answer:
    outage.up()
    if receipt.conflicting:
        log.warning(
            "%s redelivered with a different body; the first one is kept",
            surface,
            extra={"webhook_event_id": str(receipt.webhook_event_id), "type": receipt.event_type},
        )
        metrics.conflicting_delivery()
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s",
            surface,
            receipt.outcome,
            extra={"webhook_event_id": str(receipt.webhook_event_id), "type": receipt.event_type},
        )
    # ReceiptOut as JSONResponse writes it (compact), without a pydantic round trip.
    body = b'{"webhook_event_id":"%s","status":"%s"}' % (
        str(receipt.webhook_event_id).encode("ascii"),
        receipt.outcome.encode("ascii"),
    )
    status = _STATUS_CODES[receipt.outcome]
    metrics.observe_delivery(
        receipt.event_type, receipt.outcome, time.perf_counter() - started, status
    )
    return status, [(b"content-length", b"%d" % len(body)), _JSON], body


class Deadline:
    """What `asyncio.timeout` does for the receiver, cheaper: no per-use lookups of the
    running loop and task (on Python 3.11 each is a `getpid` system call, four or five
    per delivery, which showed in the profile) and one timer per delivery, not three.

    The timer is armed at `first_timer` seconds, never later than the first deadline;
    when it fires before the deadline in force (moved since, or a later first one), it
    is re-armed for what is left, so a deadline moved later costs nothing at the time."""

    __slots__ = ("expired", "handle", "loop", "task", "until")

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, first_timer: float) -> None:
        task = asyncio.current_task(loop)
        assert task is not None
        self.loop = loop
        self.task = task
        self.expired = False
        now = loop.time()
        self.until = now + delay
        self.handle = loop.call_at(now + min(delay, first_timer), self._fire)

    def _fire(self) -> None:
        if self.until - self.loop.time() > 0.001:  # the loop's clock counts milliseconds
            self.handle = self.loop.call_at(self.until, self._fire)
            return
        self.expired = True
        self.task.cancel()

    def move(self, delay: float) -> None:
        """From now, `delay` seconds (not added to what was left)."""
        until = self.loop.time() + delay
        if until < self.until:  # sooner than the timer may fire: arm it again
            self.handle.cancel()
            self.handle = self.loop.call_at(until, self._fire)
        self.until = until

    def ours(self) -> bool:
        """On a CancelledError: True when this deadline caused it (and nobody else also
        cancelled the task), which is then taken back; False: let it propagate."""
        return self.expired and self.task.uncancel() == 0

    def cancel(self) -> None:
        self.handle.cancel()


# Stores and applies one delivery's raw body: a surface's `receive`.
Work = Callable[["Receiver", bytes], Awaitable[Receipt]]


class DeliveryEndpoint:
    """One Leap delivery route as plain ASGI: the secret, the body within its limits and
    deadline, store and apply within the store deadline, and one answer (the table in
    SPEC.md "Webhooks"). Shared by every Leap surface (events, dispatch)."""

    def __init__(self, path: str, surface: str, work: Work) -> None:
        self.path = path
        self.surface = surface
        self.work = work

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = logs.bind_request_id(scope["headers"])
        try:
            status, headers, body = await self._answer(scope, receive, started)
        except Exception:
            # Every condition a receiver knows answers without raising: this is a bug. It
            # is still one counted answer (a 500, so Leap retries) and one traceback.
            log.exception("delivery receiver failed unexpectedly", extra={"path": self.path})
            status, headers, body = _refused("error", started, 500, "internal error")
        headers.append(request_id)
        headers += _POLICY
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive, started: float) -> Answer:
        receiver: Receiver = scope["app"].state.receiver
        headers = scope["headers"]
        if not receiver.authorized(headers):
            # One body for every auth failure: nothing tells a prober what was wrong.
            return _refused("unauthorized", started, 401, "webhook secret missing or not accepted")
        # One deadline, moved once: the body must arrive within BODY_READ_TIMEOUT_S (else
        # 408), then storing and applying it gets STORE_DEADLINE_S (else 503).
        deadline = Deadline(receiver.loop, bodies.BODY_READ_TIMEOUT_S, STORE_DEADLINE_S)
        storing = False
        try:
            raw = await read_body(headers, receive, receiver.max_body_bytes)
            storing = True
            deadline.move(STORE_DEADLINE_S)
            receipt = await self.work(receiver, raw)
        except asyncio.CancelledError:
            if not deadline.ours():
                raise
            if storing:
                return _unavailable(TimeoutError("store deadline passed"), started)
            return _refused("invalid", started, 408, "body not received in time")
        except SenderGone as gone:
            # Nobody reads this answer; counted under 499 (client closed), as proxies log it.
            log.warning("delivery sender disconnected before the body was complete")
            metrics.observe_delivery("unknown", gone.outcome, time.perf_counter() - started, 499)
            return 400, [(b"content-length", b"0")], b""
        except BodyRefused as refused:
            return _refused(refused.outcome, started, refused.status, refused.detail)
        except Rejected as exc:
            extra: dict[str, Any] = {"errors": exc.errors} if exc.errors else {}
            return _refused("invalid", started, exc.status, exc.detail, **extra)
        except Unavailable as exc:
            return _unavailable(exc, started)
        finally:
            deadline.cancel()
        return _accepted(receipt, started, self.surface)


async def _receive_event(receiver: Receiver, raw: bytes) -> Receipt:
    return await receive(receiver.inbox, raw, receiver.options)


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
    app: FastAPI, endpoint: DeliveryEndpoint, documented: dict[str, Any]
) -> DeliveryEndpoint:
    """Register a delivery route once, as a plain ASGI route (other methods: 405), and its
    operation in the OpenAPI document. app/main.py sends its POSTs to it directly."""
    app.router.routes.append(
        Route(endpoint.path, endpoint, methods=["POST"], include_in_schema=False)
    )
    generate = app.openapi
    path = endpoint.path

    def openapi() -> dict[str, Any]:
        document = generate()
        document.setdefault("paths", {}).setdefault(path, {})["post"] = documented
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    return endpoint


def mount(app: FastAPI) -> DeliveryEndpoint:
    return mount_delivery_route(
        app,
        DeliveryEndpoint(PATH, "webhook", _receive_event),
        operation(
            "Receive a Leap webhook delivery",
            "Leap's general webhook platform posts `{webhook_event_id, payload}` here with "
            "the shared secret in the configured header. The event is stored and applied "
            "before the answer: 202 accepted (or ignored for unknown types), 200 for an id "
            "already stored.",
            "receive_leap_webhook",
        ),
    )
