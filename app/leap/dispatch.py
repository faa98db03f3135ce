"""Leap's dispatch surface (Dispatch API v2), as pydantic models.

Names, fields and enums follow Leap's `dispatching.yml`. Liberal about what Leap writes
(unknown fields ignored; programs, event types and caps taken as text so a new program
never turns a dispatch into a dead letter), strict about what the service relies on: ids
are UUIDs, instants carry a zone and must stay representable once converted to UTC and
to any market zone (year 1 or 9999 with an offset is refused, never stored).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

from app.leap.events import as_storable_utc, check_storable

GROUP_EVENT_TYPE = "dispatch.group"
METER_EVENT_TYPE = "dispatch.meter"
DISPATCH_EVENT_TYPES = frozenset({GROUP_EVENT_TYPE, METER_EVENT_TYPE})

# Leap: "retried every minute for up to 50 attempts".
DISPATCH_RETRY_SCHEDULE: tuple[float, ...] = (0.0,) + (60.0,) * 49
# Leap: a search window may span at most 31 days.
MAX_SEARCH_DAYS = 31


def _text_only(value: object) -> object:
    # Leap writes instants as RFC 3339 strings; pydantic would also read numbers as epochs.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


Text = Annotated[str, AfterValidator(check_storable)]
# The same range as the event webhooks: nothing stored as +-infinity, every zone readable.
Instant = Annotated[datetime, BeforeValidator(_text_only), AfterValidator(as_storable_utc)]
Kilowatts = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]
# Leap writes 1..10; any value PostgreSQL's integer holds is kept as sent.
Priority = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DispatchTimeslot(_Model):
    """Leap's BaseDispatchEventTimeslot."""

    start_time: Instant
    end_time: Instant
    cancelled: bool = False
    energy_kw: Kilowatts | None = None
    nomination_kw: Kilowatts | None = None
    performance_compensation_cap: Text | None = None
    priority: Priority | None = None
    is_voluntary: bool | None = None
    dispatch_event_types: list[Text] = Field(default_factory=list)
    programs: list[Text] = Field(default_factory=list)
    # The search answers call it communication_test; Leap's examples is_communication_test.
    communication_test: bool | None = None
    is_communication_test: bool | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DispatchTimeslot:
        if self.end_time < self.start_time:
            raise ValueError("end_time is before start_time")
        return self

    @property
    def is_communication(self) -> bool:
        return bool(self.communication_test or self.is_communication_test)


class MeterDispatchTimeslot(DispatchTimeslot):
    meter_event_id: uuid.UUID


class GroupDispatchTimeslot(DispatchTimeslot):
    market_group_event_id: uuid.UUID


class WebhookMeterDispatchEvent(_Model):
    meter_id: uuid.UUID
    partner_reference: Text | None = None
    timeslots: list[MeterDispatchTimeslot] = Field(min_length=1)


class WebhookMarketGroupDispatchEvent(_Model):
    market_group_id: uuid.UUID
    meter_ids: list[uuid.UUID]
    partner_references: list[Text | None] = Field(default_factory=list)
    timeslots: list[GroupDispatchTimeslot] = Field(min_length=1)


class _Notification(_Model):
    integration_test_notification: bool = False
    communication_test: bool = False


class MeterDispatchNotification(_Notification):
    """What Leap posts to the meter dispatch webhook."""

    meter_dispatches: list[WebhookMeterDispatchEvent] = Field(min_length=1)


class GroupDispatchNotification(_Notification):
    """What Leap posts to the group dispatch webhook."""

    group_dispatches: list[WebhookMarketGroupDispatchEvent] = Field(min_length=1)


DispatchNotification = MeterDispatchNotification | GroupDispatchNotification
METER_ADAPTER: TypeAdapter[MeterDispatchNotification] = TypeAdapter(MeterDispatchNotification)
GROUP_ADAPTER: TypeAdapter[GroupDispatchNotification] = TypeAdapter(GroupDispatchNotification)


def notification_type(body: Any) -> str:
    """`dispatch.meter` or `dispatch.group` by the list the body carries; ValueError when
    the body is not a dispatch notification at all (nothing can be stored under a type)."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    has_meter, has_group = "meter_dispatches" in body, "group_dispatches" in body
    if has_meter == has_group:
        raise ValueError("body must carry exactly one of meter_dispatches and group_dispatches")
    return METER_EVENT_TYPE if has_meter else GROUP_EVENT_TYPE


def parse_notification(event_type: str, body: Any) -> DispatchNotification:
    """Validate a body of a known type (raises pydantic's ValidationError)."""
    if event_type == METER_EVENT_TYPE:
        return METER_ADAPTER.validate_python(body)
    return GROUP_ADAPTER.validate_python(body)


# ---- registration, tests and searches ----------------------------------------------------


class HeaderDescription(BaseModel):
    name: str
    value: str


class DispatchWebhook(BaseModel):
    """Leap's `Webhook`: where and with which headers dispatches are posted."""

    model_config = ConfigDict(extra="ignore")

    url: str
    headers: list[HeaderDescription] = Field(default_factory=list)


class IntegrationTestResponse(BaseModel):
    """Leap's WebhookIntegrationTestResponse: how the partner's receiver answered."""

    model_config = ConfigDict(extra="ignore")

    sent_time: datetime
    http_status: int | None = None
    received_time: datetime | None = None
    headers: dict[str, list[str]] | None = None
    body: str | None = None
    error_message: str | None = None


class DispatchSearchRequest(BaseModel):
    """Leap's Search{Meter,Group}DispatchEventRequest (one model: the filters differ)."""

    model_config = ConfigDict(extra="forbid")

    start_date: datetime
    end_date: datetime
    exclude_real_time_events: bool | None = None
    exclude_voluntary_events: bool | None = None
    page_token: str | None = None
    meter_ids: list[uuid.UUID] | None = None
    meter_event_ids: list[uuid.UUID] | None = None
    market_group_ids: list[uuid.UUID] | None = None
    market_group_event_ids: list[uuid.UUID] | None = None

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class MeterDispatchSearchPage(_Model):
    next_page_token: str | None = None
    results: list[WebhookMeterDispatchEvent]


class GroupDispatchSearchPage(_Model):
    next_page_token: str | None = None
    results: list[WebhookMarketGroupDispatchEvent]


DispatchKind = Literal["group", "meter"]
