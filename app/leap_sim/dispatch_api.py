"""HTTP surface of the fake Leap's dispatching (Leap's Dispatch API v2), and its controls.

Leap's endpoints (bearer key, like the rest of the simulator):
- `PUT | GET | DELETE /v2/dispatch/{meter|group}/webhook` — the registered URL and headers.
- `POST /v2/dispatch/{meter|group}/webhook/integration_test` — posts the given body, marked
  `integration_test_notification: true`, once, and answers how the receiver responded.
- `POST /v2/dispatch/meter/communication_test` — 201; when `approved`, a meter dispatch
  flagged `communication_test` goes to the meter webhook for the listed meters.
- `POST /v2/dispatch/{meter|group}/search` — `start_date`..`end_date` (at most 31 days),
  id filters, `page_token` / `next_page_token`, `results`.
Errors use Leap's dispatch ErrorResponse `{code, message, error_code}`.

Controls:
- `POST /sim/dispatch/groups/{market_group_id}` `{"start_time"?, "duration_minutes"?, "add"?,
  "leave_out"?, "meter_ids"?, "market_group_event_id"?, "cancelled"?, "energy_kw"?,
  "programs"?}` — dispatch the group with its true roster, or with a chosen drift; answers
  the event id, the meters listed, and exactly which were added and left out.
- `POST /sim/dispatch/meters` `{"meter_ids", "start_time"?, "duration_minutes"?,
  "meter_event_id"?}` — one meter dispatch per meter (same event id for all).
- `PUT /sim/dispatch/demo` `{"every_seconds", "drift"}`: dispatch a group that has a roster
  now and then, alternately true and with `drift` meters added and left out (what was
  injected: `GET /sim/dispatch/demo`); `DELETE /sim/dispatch/demo` stops it.
- `GET /sim/dispatch/deliveries`, `POST /sim/dispatch/drain?seconds=`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from app.leap.dispatch import MAX_SEARCH_DAYS, DispatchWebhook
from app.leap_sim.control import bearer
from app.leap_sim.dispatch import Kind, NoRoster, Registration, group_dispatch, timeslot
from app.leap_sim.portfolio import iso
from app.leap_sim.state import SimState

JSON = dict[str, Any]
_KINDS: tuple[Kind, ...] = ("meter", "group")


def _error(status: int, code: str, message: str, error_code: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "error_code": error_code}, status_code=status
    )


def _bad(message: str) -> JSONResponse:
    return _error(400, "BAD_REQUEST", message, "DISPATCH_INVALID_INPUT")


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


class _Search(BaseModel):
    start_date: datetime
    end_date: datetime
    exclude_real_time_events: bool | None = None
    exclude_voluntary_events: bool | None = None
    page_token: str | None = None
    meter_ids: list[uuid.UUID] | None = None
    meter_event_ids: list[uuid.UUID] | None = None
    market_group_ids: list[uuid.UUID] | None = None
    market_group_event_ids: list[uuid.UUID] | None = None


class _CommunicationTest(BaseModel):
    start_time: datetime
    end_time: datetime
    test_event: bool | None = None
    program: str
    meter_uuids: list[uuid.UUID] = Field(max_length=1000)
    dispatch_quantity_kw: float | None = None
    approved: bool | None = None


class GroupDispatchControl(BaseModel):
    start_time: datetime | None = None
    duration_minutes: int = Field(60, ge=1, le=24 * 60)
    add: int = Field(0, ge=0, le=1_000_000)
    leave_out: int = Field(0, ge=0, le=1_000_000)
    meter_ids: list[str] | None = None
    market_group_event_id: str | None = None
    cancelled: bool = False
    energy_kw: float | None = 100.0
    programs: list[str] | None = None


class DemoControl(BaseModel):
    every_seconds: float = Field(60.0, gt=0, le=86_400)
    drift: int = Field(3, ge=0, le=10_000)


class MeterDispatchControl(BaseModel):
    meter_ids: list[str] = Field(min_length=1)
    start_time: datetime | None = None
    duration_minutes: int = Field(60, ge=1, le=24 * 60)
    meter_event_id: str | None = None
    cancelled: bool = False


def _start(value: datetime | None) -> datetime:
    if value is None:
        return (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# The bearer key is checked by the app's middleware; declared so /docs offers Authorize.
SIM_AUTH = [Depends(bearer)]


def build_dispatch_router(state: SimState) -> APIRouter:
    router = APIRouter()
    surface = state.dispatch

    def kind_of(kind: str) -> Kind | None:
        return next((k for k in _KINDS if k == kind), None)

    @router.put("/v2/dispatch/{kind}/webhook", response_model=None)
    async def put_webhook(kind: str, request: Request) -> JSONResponse:
        chosen = kind_of(kind)
        if chosen is None:
            return _error(404, "NOT_FOUND", "unknown dispatch kind", "DISPATCH_INVALID_INPUT")
        try:
            webhook = DispatchWebhook.model_validate(await _json(request))
        except ValidationError as exc:
            return _bad(str(exc.errors(include_url=False)[0]["msg"]))
        headers = [h.model_dump() for h in webhook.headers]
        surface.registrations[chosen] = Registration(webhook.url, headers)
        return JSONResponse(surface.registrations[chosen].as_json())

    @router.get("/v2/dispatch/{kind}/webhook", response_model=None)
    async def get_webhook(kind: str) -> JSONResponse:
        chosen = kind_of(kind)
        registration = surface.registrations.get(chosen) if chosen else None
        if registration is None:
            return _error(404, "NOT_FOUND", "no webhook registered", "DISPATCH_INVALID_INPUT")
        return JSONResponse(registration.as_json())

    @router.delete("/v2/dispatch/{kind}/webhook", response_model=None)
    async def delete_webhook(kind: str) -> Response:
        chosen = kind_of(kind)
        if chosen is None or surface.registrations.pop(chosen, None) is None:
            return _error(404, "NOT_FOUND", "no webhook registered", "DISPATCH_INVALID_INPUT")
        return Response(status_code=204)

    @router.post("/v2/dispatch/{kind}/webhook/integration_test", response_model=None)
    async def integration_test(kind: str, request: Request) -> JSONResponse:
        chosen = kind_of(kind)
        body = await _json(request)
        key = f"{chosen}_dispatches"
        if chosen is None or not isinstance(body, dict) or not body.get(key):
            return _bad(f"{key} is required")
        body = {**body, "integration_test_notification": True}
        surface.sent.append(body)
        sent = datetime.now(UTC)
        attempt = await surface.attempt_once(state, chosen, body)
        if attempt is None:
            return _error(404, "NOT_FOUND", "no webhook registered", "DISPATCH_INVALID_INPUT")
        out: JSON = {"sent_time": iso(sent), "http_status": attempt.status_code}
        if attempt.status_code is not None:
            out["received_time"] = iso(sent + timedelta(milliseconds=attempt.response_time_ms))
        if attempt.error:
            out["error_message"] = attempt.error
        return JSONResponse(out)

    @router.post("/v2/dispatch/meter/communication_test", response_model=None)
    async def communication_test(request: Request) -> JSONResponse:
        try:
            test = _CommunicationTest.model_validate(await _json(request))
        except ValidationError as exc:
            return _bad(str(exc.errors(include_url=False)[0]["msg"]))
        if test.end_time - test.start_time > timedelta(days=MAX_SEARCH_DAYS):
            return _bad("end_time must be at most 31 days after start_time")
        if test.approved:
            event_id = str(uuid.uuid4())
            slot = timeslot(
                "meter_event_id", test.start_time, test.end_time, event_id=event_id,
                energy_kw=test.dispatch_quantity_kw, programs=[test.program],
                event_types=["standard"],
            )  # fmt: skip
            body = {
                "communication_test": True,
                "meter_dispatches": [
                    {"meter_id": str(m), "timeslots": [slot]} for m in test.meter_uuids
                ],
            }
            surface.send(state, "meter", body)
        answer = {
            "dispatch_status": "SENT" if test.approved else "DRY_RUN",
            "start_time": iso(test.start_time),
            "end_time": iso(test.end_time),
            "test_event": bool(test.test_event),
            "program": test.program,
            "approved": bool(test.approved),
            "market_type": "day-ahead",
            "meter_count": len(test.meter_uuids),
        }
        return JSONResponse(answer, status_code=201)

    @router.post("/v2/dispatch/{kind}/search", response_model=None)
    async def search(kind: str, request: Request) -> JSONResponse:
        chosen = kind_of(kind)
        if chosen is None:
            return _error(404, "NOT_FOUND", "unknown dispatch kind", "DISPATCH_INVALID_INPUT")
        try:
            query = _Search.model_validate(await _json(request))
        except ValidationError as exc:
            return _bad(str(exc.errors(include_url=False)[0]["msg"]))
        if query.start_date.tzinfo is None or query.end_date.tzinfo is None:
            return _bad("start_date and end_date must carry a time zone")
        if (
            not query.start_date
            < query.end_date
            <= query.start_date + timedelta(days=MAX_SEARCH_DAYS)
        ):
            return _bad("end_date must be after start_date and at most 31 days after it")
        filters = query.model_dump(mode="json", exclude_none=True)
        try:
            page = surface.search(
                chosen, query.start_date, query.end_date, filters, query.page_token
            )
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse(page)

    # ---- controls ---------------------------------------------------------------------
    @router.post(
        "/sim/dispatch/groups/{market_group_id}",
        tags=["simulator"],
        dependencies=SIM_AUTH,
        response_model=None,
        summary="Dispatch a group",
        description=(
            "Sends a group dispatch notification for the group, by default with its true roster at "
            "the start time; `add` and `leave_out` inject a drift of that many meters (Leap listing"
            " meters we do not hold, and leaving out meters we do). Answers the event id, the "
            "meters added and left out."
        ),
    )
    async def dispatch_group(
        market_group_id: str, body: GroupDispatchControl
    ) -> JSON | JSONResponse:
        if market_group_id not in state.portfolio.group_by_id and body.meter_ids is None:
            return JSONResponse({"detail": "unknown market group"}, status_code=404)
        try:
            built = group_dispatch(
                state, market_group_id, _start(body.start_time),
                timedelta(minutes=body.duration_minutes), add=body.add,
                leave_out=body.leave_out, meter_ids=body.meter_ids,
                event_id=body.market_group_event_id, cancelled=body.cancelled,
                energy_kw=body.energy_kw, programs=body.programs,
            )  # fmt: skip
        except NoRoster:
            detail = "no roster set for this group at that time (PUT /sim/groups/{id}/roster)"
            return JSONResponse({"detail": detail}, status_code=409)
        delivery = surface.send(state, "group", built.body)
        return {
            "market_group_event_id": built.market_group_event_id,
            "meter_count": len(built.meter_ids),
            "added": built.added,
            "left_out": built.left_out,
            "delivery_id": delivery,
        }

    @router.post(
        "/sim/dispatch/meters",
        tags=["simulator"],
        dependencies=SIM_AUTH,
        summary="Dispatch meters",
        description=(
            "Sends a meter dispatch notification naming these meters (one `meter_event_id` for all "
            "of them, as Leap does)."
        ),
    )
    async def dispatch_meters(body: MeterDispatchControl) -> JSON:
        start = _start(body.start_time)
        slot = timeslot(
            "meter_event_id", start, start + timedelta(minutes=body.duration_minutes),
            event_id=body.meter_event_id, cancelled=body.cancelled,
        )  # fmt: skip
        notification = {
            "meter_dispatches": [{"meter_id": m, "timeslots": [slot]} for m in body.meter_ids]
        }
        delivery = surface.send(state, "meter", notification)
        return {"meter_event_id": slot["meter_event_id"], "delivery_id": delivery}

    @router.put(
        "/sim/dispatch/demo",
        tags=["simulator"],
        dependencies=SIM_AUTH,
        summary="Start the dispatch demo",
        description=(
            "Dispatches a random group every `every_seconds`, with a drift of `drift` meters, until"
            " stopped."
        ),
    )
    async def start_demo(body: DemoControl) -> JSON:
        surface.start_demo(state, body.every_seconds, body.drift)
        return {"running": True, **body.model_dump()}

    @router.get(
        "/sim/dispatch/demo",
        tags=["simulator"],
        dependencies=SIM_AUTH,
        summary="The dispatch demo",
        description="Whether the demo runs, and the last 100 dispatches it sent.",
    )
    async def demo_log() -> JSON:
        return {"running": surface.demo is not None, "dispatched": surface.demo_log[-100:]}

    @router.delete(
        "/sim/dispatch/demo",
        tags=["simulator"],
        dependencies=SIM_AUTH,
        summary="Stop the dispatch demo",
        description="Stops dispatching groups now and then.",
    )
    async def stop_demo() -> JSON:
        surface.stop_demo()
        return {"running": False}

    @router.get(
        "/sim/dispatch/deliveries",
        tags=["simulator"],
        dependencies=SIM_AUTH,
        summary="Dispatch deliveries",
        description=(
            "Every dispatch notification sent, with its attempts and outcomes (Leap retries every "
            "minute, up to 50 times, time-scaled)."
        ),
    )
    async def deliveries() -> JSON:
        return {"deliveries": [d.as_json() for d in surface.deliveries.values()]}

    @router.post(
        "/sim/dispatch/drain",
        tags=["simulator"],
        dependencies=SIM_AUTH,
        summary="Wait for dispatch deliveries",
        description=(
            "Waits up to `seconds` until no dispatch notification is still being delivered."
        ),
    )
    async def drain(seconds: float = 10.0) -> JSON:
        return {"drained": await surface.drain(seconds)}

    return router
