"""Leap's webhook event payloads, as pydantic models (Leap's contract: imports no domain).

Shapes and enums follow Leap's published webhook definitions. Fields Leap may add later
are ignored, not rejected. Free-text fields refuse NUL and lone surrogates, which
PostgreSQL cannot store.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter


def check_storable(value: str) -> str:
    """Text PostgreSQL can hold: no NUL, no lone surrogates (ValueError otherwise)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


# A day's margin inside what Python's datetime holds: asyncpg writes datetime.min/max
# as -infinity/infinity, and reading such an instant in a market zone would overflow.
EARLIEST_INSTANT = datetime(1, 1, 2, tzinfo=UTC)
LATEST_INSTANT = datetime(9999, 12, 30, tzinfo=UTC)


def as_storable_utc(value: datetime) -> datetime:
    """The instant in UTC; ValueError when it has no zone or is outside what can be stored
    and read back (year 1, year 9999 with an offset)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a time zone")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("instant out of range") from None
    if not EARLIEST_INSTANT <= utc <= LATEST_INSTANT:
        raise ValueError("instant out of range")
    return utc


Text = Annotated[str, AfterValidator(check_storable)]
Instant = Annotated[datetime, AfterValidator(as_storable_utc)]
# Leap's *input* rules for a reference (3-256 characters, no /\?[]{}!#...) are not a
# promise about what it sends: any reference is stored as sent, NUL excepted.
PartnerReference = Annotated[str, AfterValidator(check_storable)]


class TransmissionRegion(StrEnum):
    CAISO = "CAISO"
    ERCOT = "ERCOT"
    NYISO = "NYISO"
    ISONE = "ISONE"
    PJM = "PJM"
    SERC = "SERC"
    WECC_SW = "WECC_SW"
    WECC_PC = "WECC_PC"


class MeterType(StrEnum):
    UTILITY_METER = "UTILITY_METER"
    SUBMETER = "SUBMETER"
    DEVICE = "DEVICE"


class EnrollmentStatus(StrEnum):
    ACTIVE = "ACTIVE"
    ELIGIBLE = "ELIGIBLE"
    INELIGIBLE = "INELIGIBLE"
    NOT_PARTICIPATING = "NOT_PARTICIPATING"
    PENDING = "PENDING"


class ParticipationPreference(StrEnum):
    PARTICIPATE = "PARTICIPATE"
    IDLE = "IDLE"
    DISENROLL = "DISENROLL"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RequiredAction(_Model):
    program_identifier: Text | None = None
    delivery_period: Text | None = None
    enrollment_deadline_date_time: Instant
    action_type: Text
    action_description: Text
    action_code: Text


class RequiredActions(_Model):
    partner: list[RequiredAction] = Field(default_factory=list)
    leap: list[RequiredAction] = Field(default_factory=list)


class _MeterEvent(_Model):
    meter_id: uuid.UUID
    partner_reference: PartnerReference | None = None
    # Leap's own test webhook sends meter.created without it: unknown until the API says.
    transmission_region: TransmissionRegion | None = None
    meter_type: MeterType | None = None


class MeterCreated(_MeterEvent):
    webhook_event_type: Literal["meter.created"]


class GlobalStatusUpdated(_MeterEvent):
    webhook_event_type: Literal["meter.enrollment.global-status.updated"]
    global_enrollment_status: EnrollmentStatus


class ParticipationStatusUpdated(_MeterEvent):
    webhook_event_type: Literal["meter.enrollment.participation-status.updated"]
    participation_preference: ParticipationPreference
    start_time: Instant
    end_time: Instant | None = None


class RequiredActionsUpdated(_MeterEvent):
    webhook_event_type: Literal["meter.enrollment.required-actions.updated"]
    required_actions: RequiredActions
    global_enrollment_status: EnrollmentStatus


class GroupUpdated(_Model):
    webhook_event_type: Literal["meter.enrollment.group.updated"]
    market_group_id: uuid.UUID
    market_group_name: Text
    start_date_time: Instant
    end_date_time: Instant
    meter_ids: list[uuid.UUID]


class ConnectSessionUpdated(_Model):
    webhook_event_type: Literal["connect_session.updated"]
    partner_reference: PartnerReference
    status: Literal["CREATED", "UPDATED", "CLOSED", "COMPLETED"]


class AuthorizationUpdated(_Model):
    webhook_event_type: Literal["connect_session.authorization_updated"]
    partner_reference: PartnerReference
    # Leap lists its utilities as an enum; a new utility must not turn into a dead letter.
    utility_name: Annotated[Text, Field(min_length=1, max_length=64)]
    status: Literal["INITIATED", "COMPLETED", "FAILED"]


MeterStateEvent = GlobalStatusUpdated | ParticipationStatusUpdated | RequiredActionsUpdated
LeapEvent = Annotated[
    MeterCreated
    | GlobalStatusUpdated
    | ParticipationStatusUpdated
    | RequiredActionsUpdated
    | GroupUpdated
    | ConnectSessionUpdated
    | AuthorizationUpdated,
    Field(discriminator="webhook_event_type"),
]
EVENT_ADAPTER: TypeAdapter[LeapEvent] = TypeAdapter(LeapEvent)
KNOWN_EVENT_TYPES = frozenset(
    {
        "meter.created",
        "meter.enrollment.global-status.updated",
        "meter.enrollment.participation-status.updated",
        "meter.enrollment.required-actions.updated",
        "meter.enrollment.group.updated",
        "connect_session.updated",
        "connect_session.authorization_updated",
    }
)
