"""REST shapes for dispatches (SPEC: "Dispatch: what the inventory is for")."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.openapi import NULL

_GROUP_ID = "9d1a7aae-24e5-455f-91e9-e0f5f145f2ae"
_EVENT_ID = "904751e8-c0df-4d69-8a4f-9e7cebef1f84"
_METER_ID = "beae2779-e392-4f00-b0cf-32e716204f78"

DISPATCH_EXAMPLE: dict[str, JsonValue] = {
    "dispatch_event_id": _EVENT_ID,
    "kind": "group",
    "market_group_id": _GROUP_ID,
    "meter_id": NULL,
    "start_time": "2026-07-21T00:00:00Z",
    "end_time": "2026-07-21T01:00:00Z",
    "trade_date": "2026-07-20",
    "trade_date_start": "2026-07-20T07:00:00Z",
    "energy_kw": 100.0,
    "nomination_kw": 100.0,
    "cancelled": False,
    "programs": ["CCA"],
    "priority": 1,
    "is_voluntary": False,
    "performance_compensation_cap": "up-to-site-load",
    "dispatch_event_types": ["day-ahead"],
    "integration_test": False,
    "communication_test": False,
    "meter_count": 2,
    "received_at": "2026-07-20T16:02:11Z",
    "updated_at": "2026-07-20T16:02:11Z",
}
DRIFT_EXAMPLE: dict[str, JsonValue] = {
    "checked_at": "2026-07-20T16:02:11Z",
    "trade_date": "2026-07-20",
    "leap_only_count": 1,
    "local_only_count": 0,
    "leap_only": [_METER_ID],
    "local_only": [],
}


class DispatchOut(BaseModel):
    """One timeslot of a dispatch: what the listed meters must do, and when."""

    model_config = ConfigDict(json_schema_extra={"examples": [DISPATCH_EXAMPLE]})

    dispatch_event_id: uuid.UUID = Field(
        description="Leap's market_group_event_id (group) or meter_event_id (meter)."
    )
    kind: Literal["group", "meter"]
    market_group_id: uuid.UUID | None
    meter_id: uuid.UUID | None = Field(
        description="For a meter dispatch naming one meter, that meter; else null."
    )
    start_time: datetime
    end_time: datetime
    trade_date: date = Field(description="The start's calendar day in the market's zone.")
    trade_date_start: datetime
    energy_kw: float | None = Field(description="Null: as much as the meters can.")
    nomination_kw: float | None
    cancelled: bool
    programs: list[str]
    priority: int | None
    is_voluntary: bool | None
    performance_compensation_cap: str | None
    dispatch_event_types: list[str]
    integration_test: bool = Field(description="Leap's integration-test notification.")
    communication_test: bool = Field(description="A real instruction flagged as a comm test.")
    meter_count: int
    received_at: datetime
    updated_at: datetime


class DriftOut(BaseModel):
    checked_at: datetime
    trade_date: date
    leap_only_count: int = Field(description="Dispatched by Leap, not in our roster.")
    local_only_count: int = Field(description="In our roster, not dispatched by Leap.")
    leap_only: list[uuid.UUID] = Field(description="The first 1,000, in id order.")
    local_only: list[uuid.UUID] = Field(description="The first 1,000, in id order.")


class DispatchDetail(DispatchOut):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**DISPATCH_EXAMPLE, "drift": DRIFT_EXAMPLE}]}
    )

    drift: DriftOut | None = Field(
        description="The roster check of a group dispatch; null for meter dispatches, tests, "
        "cancelled timeslots and before any check."
    )


class DispatchPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [DISPATCH_EXAMPLE], "next_cursor": NULL}]}
    )

    items: list[DispatchOut]
    next_cursor: str | None


class PartnerDispatchPage(DispatchPage):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "partner_reference": "customer-site-123",
                    "items": [DISPATCH_EXAMPLE],
                    "next_cursor": NULL,
                }
            ]
        }
    )

    partner_reference: str


class DispatchMeter(BaseModel):
    meter_id: uuid.UUID
    partner_reference: str | None


class DispatchMeterPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [{"meter_id": _METER_ID, "partner_reference": "customer-site-123"}],
                    "next_cursor": NULL,
                }
            ]
        }
    )

    items: list[DispatchMeter]
    next_cursor: str | None


class LastDrift(BaseModel):
    dispatch_event_id: uuid.UUID
    market_group_id: uuid.UUID
    leap_only_count: int
    local_only_count: int
    checked_at: datetime


class DispatchStatus(BaseModel):
    """The dispatch part of GET /v1/sync/status."""

    last_received_at: datetime | None
    drift_24h: int = Field(description="Timeslots found with drift in the last 24 hours.")
    last_drift: LastDrift | None
