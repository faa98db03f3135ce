"""HTTP surface of the fake Leap ("leap-sim").

Leap's endpoints (`Authorization: Bearer <key>` required on these and on `/sim`):

- `GET /v2/meters/{meter_id}`, `POST /v2/meters/search` (Meter Details v2)
- `GET /v2/meters/{meter_id}/enrollments`, `POST /v2/meters/enrollments/search`
  (Meter Enrollment v2); search bodies take Leap's `MeterFilterRequest` filters,
  `page_size` <= 500 and the opaque `page_token` from the previous `next_page_token`.
  Errors use Leap's v2 shape `{"title", "status", "details"}`.
- `/v1.1/webhooks` list/create, `/v1.1/webhooks/{webhook_id}` update (PUT)/delete,
  `/v1.1/webhooks/{webhook_id}/test`; errors use `{"error", "message"}`.

Simulator controls live under `/sim` (see `app.leap_sim.control`). Fault injection
(`app.leap_sim.faults`) applies to `/v2/` only.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.types import ASGIApp, Receive, Scope, Send

from app.leap_sim.control import build_control_router
from app.leap_sim.dispatch_api import build_dispatch_router
from app.leap_sim.faults import FaultMiddleware
from app.leap_sim.search import MeterFilter, SearchError, search
from app.leap_sim.sender import Target
from app.leap_sim.state import EVENT_TYPES, SimState, Subscription

JSON = dict[str, Any]


class LeapError(Exception):
    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers


def v2_error(status: int, title: str, details: JSON | None = None) -> LeapError:
    return LeapError(status, {"title": title, "status": status, "details": details or {}})


def webhook_error(status: int, error: str, message: str) -> LeapError:
    return LeapError(status, {"error": error, "message": message})


class HeaderIn(BaseModel):
    name: str = Field(min_length=1)
    value: str


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    headers: list[HeaderIn] = Field(default_factory=list)
    event_types: list[str]
    receiver_url: str = Field(min_length=1)

    @field_validator("event_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(unknown)}")
        return value


class _CountRequests:
    """Counts requests served per area (v2, webhooks, sim, other) and status class."""

    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"])
        area = next(
            (
                a
                for p, a in (("/v2/", "v2"), ("/v1.1/", "webhooks"), ("/sim", "sim"))
                if path.startswith(p)
            ),
            "other",
        )
        self.state.requests[area] += 1

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.state.requests[f"{area}_{message['status'] // 100}xx"] += 1
            await send(message)

        await self.app(scope, receive, counting_send)


class _RequireKey:
    """Bearer key check ahead of routing, so no unauthenticated request sees more than 401."""

    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(("/v2/", "/v1.1/", "/sim")):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        key = self.state.api_key.encode()
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key):
            await self.app(scope, receive, send)
            return
        body: object = {"detail": "Unauthorized"}
        if path.startswith("/v2/"):
            body = {"title": "Unauthorized", "status": 401, "details": {}}
        elif path.startswith("/v1.1/"):
            body = {"error": "Unauthorized", "message": "Auth token is invalid"}
        response = JSONResponse(body, status_code=401, headers={"www-authenticate": "Bearer"})
        await response(scope, receive, send)


SIM_DESCRIPTION = """
A stand-in for Leap in demos and tests: Leap's meter API (`/v2/meters...`), its webhook
subscriptions (`/v1.1/webhooks...`) and webhook deliveries to subscribed receivers, over
a generated portfolio (the same meters and references for the same `--seed`, restart
after restart).

Every route under `/v2`, `/v1.1` and `/sim` needs `Authorization: Bearer <key>`: the
key is `LEAP_SIM_API_KEY` (`sim-key` when unset). Use **Authorize** here with it.

`/sim` (below) drives the simulation: each call that changes meters answers with the
`meter_ids` changed and the `webhook_event_ids` of the events it sent.
"""


def create_app(state: SimState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.sender.start()
        if state.dispatch.demo_at_start is not None:
            state.dispatch.start_demo(state, *state.dispatch.demo_at_start)
        try:
            yield
        finally:
            await state.dispatch.aclose()
            await state.sender.aclose()

    # Offline assets, like meter-sync's own /docs: the demo runs without internet access.
    app = FastAPIOffline(
        title="leap-sim (the fake Leap)",
        version="1",
        description=SIM_DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.sim = state

    @app.exception_handler(LeapError)
    async def _leap_error(_: Request, exc: LeapError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = {
            ".".join(str(p) for p in e["loc"] if p != "body") or "body": e["msg"]
            for e in exc.errors()
        }
        path = request.url.path
        if path.startswith("/v2/"):
            body: object = {"title": "Bad Request", "status": 400, "details": errors}
            return JSONResponse(body, status_code=400)
        if path.startswith("/v1.1/"):
            body = {"error": "Bad Request", "message": json.dumps(errors)}
            return JSONResponse(body, status_code=400)
        return JSONResponse({"detail": exc.errors()}, status_code=422)

    v2 = APIRouter(prefix="/v2/meters")

    def _index(meter_id: str) -> int:
        try:
            uuid.UUID(meter_id)
        except ValueError:
            raise v2_error(400, "Meter id is not a UUID", {"meter_id": meter_id}) from None
        index = state.portfolio.index_of(meter_id)
        if index is None or state.portfolio.core(index) is None:
            raise v2_error(404, "Meter not found", {"meter_id": meter_id})
        return index

    def _search(body: MeterFilter | None, kind: str) -> JSON:
        p = state.portfolio
        render = (
            p.enrollment_of if kind == "enrollments" else (lambda c: p.meter_record(c.index) or {})
        )
        try:
            page = search(p, body or MeterFilter(), render)
        except SearchError as exc:
            raise v2_error(400, exc.title, exc.details) from None
        if not page["meters"]:
            answer = state.faults.empty_search_answer()
            if answer == "404":
                raise v2_error(404, "Meter not found", {})
            if answer == "no_meters":
                return {key: value for key, value in page.items() if key != "meters"}
        return page

    @v2.post("/search")
    async def search_meters(body: MeterFilter | None = None) -> JSON:
        return _search(body, "meters")

    @v2.post("/enrollments/search")
    async def search_enrollments(body: MeterFilter | None = None) -> JSON:
        return _search(body, "enrollments")

    @v2.get("/{meter_id}")
    async def get_meter(meter_id: str) -> JSON:
        return state.portfolio.meter_record(_index(meter_id)) or {}

    @v2.get("/{meter_id}/enrollments")
    async def get_enrollment(meter_id: str) -> JSON:
        return state.portfolio.enrollment_record(_index(meter_id)) or {}

    hooks = APIRouter(prefix="/v1.1/webhooks")

    def _subscription(webhook_id: str) -> Subscription:
        sub = state.webhooks.get(webhook_id)
        if sub is None:
            raise webhook_error(404, "Not Found", "The specified resource was not found")
        return sub

    @hooks.get("")
    async def list_webhooks() -> JSON:
        return {"webhooks": [s.as_json() for s in state.webhooks.values()]}

    @hooks.post("")
    async def create_webhook(body: WebhookIn) -> JSON:
        webhook_id = str(uuid.uuid4())
        state.webhooks[webhook_id] = Subscription(
            webhook_id,
            list(dict.fromkeys(body.event_types)),
            [h.model_dump() for h in body.headers],
            body.receiver_url,
        )
        return {"webhook_id": webhook_id}

    @hooks.put("/{webhook_id}")
    async def update_webhook(webhook_id: str, body: WebhookIn) -> JSON:
        sub = _subscription(webhook_id)
        sub.event_types = list(dict.fromkeys(body.event_types))
        sub.headers = [h.model_dump() for h in body.headers]
        sub.receiver_url = body.receiver_url
        return {"webhook_id": webhook_id}

    @hooks.delete("/{webhook_id}")
    async def delete_webhook(webhook_id: str) -> JSON:
        _subscription(webhook_id)
        del state.webhooks[webhook_id]
        return {"message": "Operation completed successfully"}

    @hooks.post("/{webhook_id}/test")
    async def test_webhook(webhook_id: str, request: Request) -> JSON:
        sub = _subscription(webhook_id)
        try:
            payload = await request.json()
        except ValueError:
            raise webhook_error(400, "Bad Request", "body is not JSON") from None
        if not isinstance(payload, dict) or "webhook_event_type" not in payload:
            raise webhook_error(400, "Bad Request", "webhook_event_type is required")
        envelope = {"webhook_event_id": str(uuid.uuid4()), "payload": payload}
        target: Target = sub.target()
        began = time.perf_counter()
        attempt = await state.sender.attempt(target, json.dumps(envelope).encode())
        out: JSON = {"is_successful": attempt.ok}
        if attempt.status_code is None:
            out["error"] = attempt.error or "no response"
        else:
            out["status_code"] = attempt.status_code
            out["response_time_ms"] = int((time.perf_counter() - began) * 1000)
        return out

    app.include_router(v2)
    app.include_router(hooks)
    app.include_router(build_control_router(state))
    app.include_router(build_dispatch_router(state))
    app.add_middleware(_RequireKey, state=state)
    app.add_middleware(FaultMiddleware, injector=state.faults)
    app.add_middleware(_CountRequests, state=state)
    return app
