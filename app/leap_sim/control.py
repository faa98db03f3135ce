"""Simulator control endpoints under `/sim` (bearer key required, like Leap's own).

Each evolution stamps the meters' `audit.updated_at` and emits Leap's event to every
subscription selecting it; answers carry the meter ids and the emitted event ids.

- `POST /sim/meters` `{"count", "transmission_region"?, "meter_type"?, "partner_reference"?}`
  adds meters (status PENDING) -> `meter.created`.
- `POST /sim/meters/status` `{"meter_ids", "global_enrollment_status"}`
  -> `meter.enrollment.global-status.updated`.
- `POST /sim/meters/participation` `{"meter_ids", "participation_preference",
  "start_time", "end_time"?, "reason"?}` -> `meter.enrollment.participation-status.updated`.
- `POST /sim/meters/required-actions` `{"meter_ids", "partner": [...], "leap"?: [...]}`;
  items are Leap RequiredAction objects or bare action_type strings (expanded to a
  default action); an empty `partner` list clears them (event carries `{}`)
  -> `meter.enrollment.required-actions.updated`.
- `POST /sim/meters/archive` `{"meter_ids", "is_archived"?: true}` (no event in Leap).
- `POST /sim/meters/remove` `{"meter_ids"}`: Leap stops returning them (404 / absent).
- `POST /sim/evolve` `{"changes", "seed"?}`: random global-status changes.
- `GET /sim/groups`: market groups (id, name, region, and the window of the portfolio's
  month as Leap writes a group's: `end_date_time` is when the group becomes inactive).
- `PUT /sim/groups/{market_group_id}/roster` `{"start_date_time"?, "end_date_time"?,
  "meter_ids"? | "count"?}`: the group's members for that window (default: the group's
  month, as listed) become exactly these meters (`count` picks the first ACTIVE meters of
  the group's region) -> `meter.enrollment.group.updated`.
- `POST /sim/connect-sessions` `{"partner_reference", "status"}` -> `connect_session.updated`.
- `POST /sim/authorizations` `{"partner_reference", "utility_name", "status"}`
  -> `connect_session.authorization_updated`.
- `POST /sim/connect` `{"partner_reference", "utility_name", "meters"?: 1,
  "transmission_region"?, "meter_type"?, "meter_partner_reference"?}`: Leap's
  authorization chain for that Connect refId: session CREATED, UPDATED, authorization
  INITIATED, COMPLETED, session COMPLETED, then `meter.created` for each new meter, whose
  `connection_references` hold the refId (its own partner_reference differs or is unset).
- `POST /sim/events` `{...any payload with webhook_event_type...}`: emit as given.
- `GET /sim/events?limit=`: the last emitted envelopes (with `webhook_id`).
- `GET /sim/deliveries?outcome=&webhook_event_id=`: delivery attempts and outcomes.
- `POST /sim/drain?seconds=`: wait until no delivery is pending.
- `GET /sim/faults`, `PUT /sim/faults` (a `FaultConfig`); `GET /sim/stats`.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from app.leap_sim import regions as R
from app.leap_sim.faults import FaultConfig
from app.leap_sim.periods import group_window
from app.leap_sim.search import MeterType, Region, Status
from app.leap_sim.shapes import iso
from app.leap_sim.state import SimState, UnknownMeter

JSON = dict[str, Any]


class AddMeters(BaseModel):
    count: int = Field(1, ge=1, le=100_000)
    transmission_region: Region | None = None
    meter_type: MeterType | None = None
    partner_reference: str | None = Field(None, min_length=3, max_length=256)


class MeterIds(BaseModel):
    meter_ids: list[str] = Field(min_length=1)


class StatusChange(MeterIds):
    global_enrollment_status: Status


class ParticipationChange(MeterIds):
    participation_preference: Literal["PARTICIPATE", "IDLE", "DISENROLL"]
    start_time: datetime
    end_time: datetime | None = None
    reason: str | None = None


class ActionsChange(MeterIds):
    partner: list[JSON | str] = Field(default_factory=list)
    leap: list[JSON | str] | None = None


class ArchiveChange(MeterIds):
    is_archived: bool = True


class Evolve(BaseModel):
    changes: int = Field(1, ge=1, le=100_000)
    seed: int | None = None


class Roster(BaseModel):
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    meter_ids: list[str] | None = None
    count: int | None = Field(None, ge=0, le=1_000_000)


class ConnectSession(BaseModel):
    partner_reference: str = Field(min_length=3, max_length=256)
    status: Literal["CREATED", "UPDATED", "CLOSED", "COMPLETED"]


class Authorization(BaseModel):
    partner_reference: str = Field(min_length=3, max_length=256)
    utility_name: str
    status: Literal["INITIATED", "COMPLETED", "FAILED"]


class ConnectFlow(BaseModel):
    partner_reference: str = Field(min_length=3, max_length=256)
    utility_name: str
    meters: int = Field(1, ge=0, le=1000)
    transmission_region: Region | None = None
    meter_type: MeterType | None = None
    meter_partner_reference: str | None = Field(None, min_length=3, max_length=256)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise HTTPException(422, "date-times must carry a time zone")
    return value


def build_control_router(state: SimState) -> APIRouter:
    # the bearer key is checked by the app's middleware (see app.leap_sim.api)
    router = APIRouter(prefix="/sim", tags=["simulator"])

    def guarded(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except UnknownMeter as exc:
            raise HTTPException(404, f"unknown meter: {exc.args[0]}") from None

    @router.post("/meters")
    async def add_meters(body: AddMeters) -> JSON:
        ids = state.add_meters(
            body.count, body.transmission_region, body.meter_type, body.partner_reference
        )
        return {"meter_ids": ids}

    @router.post("/meters/status")
    async def set_status(body: StatusChange) -> JSON:
        events = guarded(state.set_status, body.meter_ids, body.global_enrollment_status)
        return {"meter_ids": body.meter_ids, "webhook_event_ids": events}

    @router.post("/meters/participation")
    async def set_participation(body: ParticipationChange) -> JSON:
        end = None if body.end_time is None else _utc(body.end_time)
        events = guarded(
            state.set_participation,
            body.meter_ids,
            body.participation_preference,
            _utc(body.start_time),
            end,
            body.reason,
        )
        return {"meter_ids": body.meter_ids, "webhook_event_ids": events}

    @router.post("/meters/required-actions")
    async def set_actions(body: ActionsChange) -> JSON:
        events = guarded(state.set_required_actions, body.meter_ids, body.partner, body.leap)
        return {"meter_ids": body.meter_ids, "webhook_event_ids": events}

    @router.post("/meters/archive")
    async def archive(body: ArchiveChange) -> JSON:
        guarded(state.archive, body.meter_ids, body.is_archived)
        return {"meter_ids": body.meter_ids}

    @router.post("/meters/remove")
    async def remove(body: MeterIds) -> JSON:
        guarded(state.remove, body.meter_ids)
        return {"meter_ids": body.meter_ids}

    @router.post("/evolve")
    async def evolve(body: Evolve) -> JSON:
        rnd = random.Random(body.seed)
        p = state.portfolio
        if p.count == 0:
            return {"meter_ids": [], "webhook_event_ids": []}
        statuses = ("ACTIVE", "ELIGIBLE", "INELIGIBLE", "NOT_PARTICIPATING", "PENDING")
        ids, events = [], []
        for _ in range(body.changes):
            core = p.core(rnd.randrange(p.count))
            if core is None:
                continue
            status = rnd.choice([s for s in statuses if s != core.status])
            events += state.set_status([core.meter_id], status)
            ids.append(core.meter_id)
        return {"meter_ids": ids, "webhook_event_ids": events}

    def month_of(region: str) -> tuple[datetime, datetime]:
        return group_window(R.REGION_BY_NAME[region], state.portfolio.anchor)

    @router.get("/groups")
    async def groups() -> JSON:
        out = []
        for g in state.portfolio.groups:
            start, end = month_of(g.region)
            out.append(
                {
                    "market_group_id": g.market_group_id,
                    "market_group_name": g.name,
                    "region": g.region,
                    "start_date_time": iso(start),
                    "end_date_time": iso(end),
                }
            )
        return {"groups": out}

    @router.put("/groups/{market_group_id}/roster")
    async def set_roster(market_group_id: str, body: Roster) -> JSON:
        if market_group_id not in state.portfolio.group_by_id:
            raise HTTPException(404, "unknown market group")
        if (body.meter_ids is None) == (body.count is None):
            raise HTTPException(422, "give exactly one of meter_ids and count")
        ids = body.meter_ids
        if ids is None:
            ids = state.pick_members(market_group_id, body.count or 0)
        start, end = month_of(state.portfolio.group_by_id[market_group_id].region)
        if body.start_date_time is not None:
            start = _utc(body.start_date_time)
        if body.end_date_time is not None:
            end = _utc(body.end_date_time)
        if end <= start:
            raise HTTPException(422, "end_date_time must be after start_date_time")
        events = guarded(state.set_roster, market_group_id, start, end, ids)
        return {"meter_ids": ids, "webhook_event_ids": events}

    @router.post("/connect-sessions")
    async def connect_session(body: ConnectSession) -> JSON:
        return {"webhook_event_ids": state.connect_session(body.partner_reference, body.status)}

    @router.post("/authorizations")
    async def authorization(body: Authorization) -> JSON:
        events = state.authorization(body.partner_reference, body.utility_name, body.status)
        return {"webhook_event_ids": events}

    @router.post("/connect")
    async def connect(body: ConnectFlow) -> JSON:
        meter_ids, events = state.connect_flow(
            body.partner_reference,
            body.utility_name,
            body.meters,
            body.transmission_region,
            body.meter_type,
            body.meter_partner_reference,
        )
        return {"meter_ids": meter_ids, "webhook_event_ids": events}

    @router.post("/events")
    async def raw_event(body: JSON) -> JSON:
        if not isinstance(body.get("webhook_event_type"), str):
            raise HTTPException(422, "webhook_event_type is required")
        return {"webhook_event_ids": state.emit(body)}

    @router.get("/events")
    async def events(limit: int = 1000) -> JSON:
        items = list(state.emitted)[-limit:] if limit > 0 else []
        return {"events": items}

    @router.get("/deliveries")
    async def deliveries(outcome: str | None = None, webhook_event_id: str | None = None) -> JSON:
        items = [
            d.as_json()
            for d in state.sender.deliveries.values()
            if (outcome is None or d.outcome == outcome)
            and (webhook_event_id is None or d.event_id == webhook_event_id)
        ]
        return {"deliveries": items}

    @router.post("/drain")
    async def drain(seconds: float = 10.0) -> JSON:
        done = await state.sender.drain(seconds)
        return {"drained": done, "pending": state.sender.pending}

    @router.get("/faults")
    async def get_faults() -> JSON:
        return state.faults.stats()

    @router.put("/faults")
    async def set_faults(body: FaultConfig) -> JSON:
        state.faults.configure(body)
        return state.faults.stats()

    @router.get("/stats")
    async def stats() -> JSON:
        return state.stats()

    return router
