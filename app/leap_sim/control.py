"""Simulator control endpoints under `/sim` (bearer key required, like Leap's own).

Each route's summary and description are its documentation: the fake Leap serves them
at its own `/docs`. Each evolution stamps the meters' `audit.updated_at` and emits
Leap's event to every subscription selecting it; answers carry the meter ids and the ids
of the webhook events sent (`webhook_event_ids`, empty when Leap sends none).
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from app.leap_sim import regions as R
from app.leap_sim.faults import FaultConfig
from app.leap_sim.periods import group_window
from app.leap_sim.search import MeterType, Region, Status
from app.leap_sim.shapes import iso
from app.leap_sim.state import SimState, UnknownMeter

JSON = dict[str, Any]
bearer = HTTPBearer(auto_error=False, description="The fake Leap's key (LEAP_SIM_API_KEY)")


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
    # The bearer scheme is declared so the fake Leap's /docs offers Authorize.
    router = APIRouter(prefix="/sim", tags=["simulator"], dependencies=[Depends(bearer)])

    def guarded(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except UnknownMeter as exc:
            raise HTTPException(404, f"unknown meter: {exc.args[0]}") from None

    @router.post(
        "/meters",
        summary="Add meters",
        description=(
            "New meters in status PENDING (region and type drawn when not given); each sends "
            "`meter.created`. Their ids are new for every run of the fake Leap."
        ),
    )
    async def add_meters(body: AddMeters) -> JSON:
        ids, events = state.add_meters(
            body.count, body.transmission_region, body.meter_type, body.partner_reference
        )
        return {"meter_ids": ids, "webhook_event_ids": events}

    @router.post(
        "/meters/status",
        summary="Set meters' global enrollment status",
        description="Sends `meter.enrollment.global-status.updated` for each meter.",
    )
    async def set_status(body: StatusChange) -> JSON:
        events = guarded(state.set_status, body.meter_ids, body.global_enrollment_status)
        return {"meter_ids": body.meter_ids, "webhook_event_ids": events}

    @router.post(
        "/meters/participation",
        summary="Set a participation preference window",
        description=(
            "PARTICIPATE, IDLE or DISENROLL from `start_time` (to `end_time`, open when absent); "
            "sends `meter.enrollment.participation-status.updated`."
        ),
    )
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

    @router.post(
        "/meters/required-actions",
        summary="Set partner (and Leap) required actions",
        description=(
            "Items are Leap RequiredAction objects or bare action_type strings (expanded to a "
            "default action); an empty `partner` list clears them (the event carries `{}`). Sends"
            " `meter.enrollment.required-actions.updated`."
        ),
    )
    async def set_actions(body: ActionsChange) -> JSON:
        events = guarded(state.set_required_actions, body.meter_ids, body.partner, body.leap)
        return {"meter_ids": body.meter_ids, "webhook_event_ids": events}

    @router.post(
        "/meters/archive",
        summary="Archive or unarchive meters",
        description="Only the records change: Leap sends no event for archival.",
    )
    async def archive(body: ArchiveChange) -> JSON:
        guarded(state.archive, body.meter_ids, body.is_archived)
        return {"meter_ids": body.meter_ids, "webhook_event_ids": []}

    @router.post(
        "/meters/remove",
        summary="Remove meters from Leap",
        description="Leap stops returning them (404, absent from searches); no event.",
    )
    async def remove(body: MeterIds) -> JSON:
        guarded(state.remove, body.meter_ids)
        return {"meter_ids": body.meter_ids, "webhook_event_ids": []}

    @router.post(
        "/evolve",
        summary="Random global-status changes",
        description=(
            "`changes` meters picked at random (with `seed`, repeatably) get another status; one "
            "`meter.enrollment.global-status.updated` each."
        ),
    )
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

    @router.get(
        "/groups",
        summary="Market groups",
        description=(
            "Id, name, region, and the window of the portfolio's month as Leap writes a group's "
            "(`end_date_time` is when the group becomes inactive)."
        ),
    )
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

    @router.put(
        "/groups/{market_group_id}/roster",
        summary="Set a group's roster for a window",
        description=(
            "The group's members for the window (default: the group's month, as listed) become "
            "exactly `meter_ids`, or the first `count` ACTIVE meters of the group's region; sends"
            " `meter.enrollment.group.updated`."
        ),
    )
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

    @router.post(
        "/connect-sessions",
        summary="Send a Connect session update",
        description="Sends `connect_session.updated` for the partner reference.",
    )
    async def connect_session(body: ConnectSession) -> JSON:
        return {"webhook_event_ids": state.connect_session(body.partner_reference, body.status)}

    @router.post(
        "/authorizations",
        summary="Send an authorization update",
        description="Sends `connect_session.authorization_updated` for the partner reference.",
    )
    async def authorization(body: Authorization) -> JSON:
        events = state.authorization(body.partner_reference, body.utility_name, body.status)
        return {"webhook_event_ids": events}

    @router.post(
        "/connect",
        summary="Run Leap Connect's authorization chain",
        description=(
            "For the Connect refId: session CREATED, UPDATED, authorization INITIATED, COMPLETED,"
            " session COMPLETED, then `meter.created` for each new meter, whose "
            "`connection_references` hold the refId."
        ),
    )
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

    @router.post(
        "/events",
        summary="Send any event as given",
        description=(
            "The body is the payload (it needs `webhook_event_type`); sent to every subscription "
            "selecting that type."
        ),
    )
    async def raw_event(body: JSON) -> JSON:
        if not isinstance(body.get("webhook_event_type"), str):
            raise HTTPException(422, "webhook_event_type is required")
        return {"webhook_event_ids": state.emit(body)}

    @router.get(
        "/events",
        summary="Events sent lately",
        description="The last `limit` envelopes sent, with the subscription (`webhook_id`).",
    )
    async def events(limit: int = 1000) -> JSON:
        items = list(state.emitted)[-limit:] if limit > 0 else []
        return {"events": items}

    @router.get(
        "/deliveries",
        summary="Delivery attempts and outcomes",
        description="Filtered by `outcome` and `webhook_event_id` when given.",
    )
    async def deliveries(outcome: str | None = None, webhook_event_id: str | None = None) -> JSON:
        items = [
            d.as_json()
            for d in state.sender.deliveries.values()
            if (outcome is None or d.outcome == outcome)
            and (webhook_event_id is None or d.event_id == webhook_event_id)
        ]
        return {"deliveries": items}

    @router.post(
        "/drain",
        summary="Wait until no delivery is pending",
        description="Waits at most `seconds`; answers whether every delivery finished.",
    )
    async def drain(seconds: float = 10.0) -> JSON:
        done = await state.sender.drain(seconds)
        return {"drained": done, "pending": state.sender.pending}

    @router.get(
        "/faults",
        summary="Fault injection settings and counts",
        description="For `/v2/` only.",
    )
    async def get_faults() -> JSON:
        return state.faults.stats()

    @router.put(
        "/faults",
        summary="Set fault injection",
        description="A FaultConfig; applies to `/v2/` only.",
    )
    async def set_faults(body: FaultConfig) -> JSON:
        state.faults.configure(body)
        return state.faults.stats()

    @router.get(
        "/stats",
        summary="Counters",
        description="Meters, events, deliveries and requests by area.",
    )
    async def stats() -> JSON:
        return state.stats()

    return router
