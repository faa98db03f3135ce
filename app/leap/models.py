"""What meter-sync reads from Leap's v2 meter APIs, as pydantic models.

Covers `GET /v2/meters/{id}` and `POST /v2/meters/search` (Meter Details v2) and
`GET /v2/meters/{id}/enrollments` and `POST /v2/meters/enrollments/search` (Meter
Enrollment v2), plus the `MeterFilterRequest` body both searches take.

Tolerance, on purpose:

- Every response model allows extra fields (Leap adds fields), and every record keeps the
  exact mapping it was parsed from in `.raw`, for storing as JSONB untouched (Leap's
  nanosecond timestamps survive there; the typed fields truncate them to microseconds).
- Enumerations (regions, statuses, utilities, programs, action types) are plain `str`:
  Leap grows these lists, and one new value must not fail a whole search page.
- Only what meter-sync cannot work without is required: `meter_id`; a participation
  preference's kind and start; a program enrollment's delivery period and status.
  Everything else Leap marks required is optional here, so an incomplete record is
  stored rather than blocking a reconciliation run.

Timestamps are timezone-aware UTC datetimes. Leap writes several formats (`...Z`,
`.000Z`, `+00:00`, microseconds, and nanoseconds such as `9000-12-31T23:59:59.999999999Z`);
`parse_leap_datetime` accepts them all, truncating past microseconds, and reads a
timestamp without offset as UTC (Leap documents its times as UTC).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)

__all__ = [
    "EnrollmentPage",
    "LeapAudit",
    "LeapCustomer",
    "LeapDateTime",
    "LeapDevice",
    "LeapEnrollment",
    "LeapEnrollmentDeadline",
    "LeapMeter",
    "LeapParticipationPreference",
    "LeapProgramEnrollment",
    "LeapRequiredAction",
    "LeapRequiredActions",
    "LeapSite",
    "LeapUtility",
    "MeterFilter",
    "MeterPage",
    "parse_leap_datetime",
]

JSON = dict[str, Any]

_TIMESTAMP = re.compile(
    r"""
    (?P<base>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2})?)
    (?:[.,](?P<fraction>\d+))?
    (?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?
    """,
    re.VERBOSE,
)


def parse_leap_datetime(value: object) -> datetime:
    """An aware UTC datetime from any timestamp format Leap writes.

    Accepts `datetime` (naive is read as UTC) and ISO 8601 strings with `Z` or a numeric
    offset and any number of fractional digits (beyond 6 are truncated, not rounded,
    so `...59.999999999Z` stays in the same second).
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        match = _TIMESTAMP.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"not an ISO 8601 timestamp: {value[:64]!r}")
        text = match["base"].replace("t", "T").replace(" ", "T")
        if match["fraction"]:
            text += "." + match["fraction"][:6].ljust(6, "0")
        offset = match["offset"]
        if offset and offset not in ("Z", "z"):
            text += offset if len(offset) != 5 else f"{offset[:3]}:{offset[3:]}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a valid timestamp: {value[:64]!r}") from None
    else:
        raise ValueError(f"expected a timestamp string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


LeapDateTime = Annotated[datetime, BeforeValidator(parse_leap_datetime)]
"""A timestamp from Leap: aware, in UTC, at most microsecond precision."""


class _LeapModel(BaseModel):
    """Base of Leap response parts: unknown fields allowed and kept (see `model_extra`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _LeapRecord(_LeapModel):
    """A top-level Leap record that remembers the exact mapping it was parsed from."""

    _raw: JSON | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        record = handler(data)
        if isinstance(data, dict):
            record._raw = data
        return record

    @property
    def raw(self) -> JSON:
        """The record exactly as Leap sent it (decoded JSON), for storage as JSONB.

        A record built in code rather than parsed from Leap's JSON falls back to its JSON
        dump (unknown fields included).
        """
        if self._raw is not None:
            return self._raw
        return self.model_dump(mode="json")


# ---- shared parts -----------------------------------------------------------------------


class LeapAudit(_LeapModel):
    created_by: str | None = None
    created_at: LeapDateTime | None = None
    updated_at: LeapDateTime | None = None


class _MeterIdentity(_LeapRecord):
    """Fields both Meter Details and Meter Enrollment records carry."""

    meter_id: uuid.UUID
    partner_reference: str | None = None
    transmission_region: str | None = None
    customer_classification: str | None = None
    load_types: list[str] = Field(default_factory=list)
    meter_type: str | None = None
    connection_references: list[str] = Field(default_factory=list)
    customer_group: str | None = None
    tags: list[str] = Field(default_factory=list)
    is_archived: bool = False
    audit: LeapAudit | None = None

    @property
    def updated_at(self) -> datetime | None:
        """Leap's `audit.updated_at`, the record's version for ordering fetches."""
        return self.audit.updated_at if self.audit is not None else None


# ---- Meter Details v2 -------------------------------------------------------------------


class LeapUtility(_LeapModel):
    utility_name: str | None = None
    load_serving_entity: str | None = None
    electric_service_account_number: str | None = None
    tariff: str | None = None
    voltage: str | None = None
    utility_meter_serial_number: str | None = None
    bill_service_agreement_number: str | None = None
    bill_customer_account_number: str | None = None


class LeapSite(_LeapModel):
    load_zone: str | None = None
    number_of_devices: int | None = None


class LeapCustomer(_LeapModel):
    """The end customer and service address (`billing` and the rest stay in extras)."""

    street_1: str | None = None
    street_2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    state_or_province_code: str | None = None
    country_code: str | None = None
    end_customer_name: str | None = None
    end_customer_company_name: str | None = None
    partner_customer_reference: str | None = None


class LeapDevice(_LeapModel):
    device_type: str | None = None
    device_serial_number: str | None = None
    device_model: str | None = None
    device_manufacturer: str | None = None


class LeapMeter(_MeterIdentity):
    """A Meter Details v2 record (`GET /v2/meters/{id}`, `POST /v2/meters/search`)."""

    customer: LeapCustomer | None = None
    device: LeapDevice | None = None
    site: LeapSite | None = None
    utility: LeapUtility | None = None


# ---- Meter Enrollment v2 ----------------------------------------------------------------


class LeapParticipationPreference(_LeapModel):
    participation_preference: str
    start_time: LeapDateTime
    end_time: LeapDateTime | None = None
    reason: str | None = None


class LeapEnrollmentDeadline(_LeapModel):
    enrollment_deadline_date_time: LeapDateTime | None = None
    activation_date_time: LeapDateTime | None = None


class LeapProgramEnrollment(_LeapModel):
    program_identifier: str | None = None
    delivery_period: str | None = None
    delivery_period_start_date_time: LeapDateTime
    delivery_period_end_date_time: LeapDateTime
    enrollment_status: str
    enrollment_deadlines: list[LeapEnrollmentDeadline] = Field(default_factory=list)
    market_group_id: uuid.UUID | None = None
    market_group_name: str | None = None


class LeapRequiredAction(_LeapModel):
    program_identifier: str | None = None
    delivery_period: str | None = None
    enrollment_deadline_date_time: LeapDateTime | None = None
    action_type: str | None = None
    action_description: str | None = None
    action_code: str | None = None


class LeapRequiredActions(_LeapModel):
    partner: list[LeapRequiredAction] = Field(default_factory=list)
    leap: list[LeapRequiredAction] = Field(default_factory=list)

    @field_validator("partner", "leap", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return [] if value is None else value


class LeapEnrollment(_MeterIdentity):
    """A Meter Enrollment v2 record (`GET /v2/meters/{id}/enrollments`, enrollment search)."""

    global_enrollment_status: str | None = None
    participation_preferences: list[LeapParticipationPreference] = Field(default_factory=list)
    program_enrollment: list[LeapProgramEnrollment] = Field(default_factory=list)
    required_actions: LeapRequiredActions = Field(default_factory=LeapRequiredActions)

    @field_validator("participation_preferences", "program_enrollment", mode="before")
    @classmethod
    def _null_list_is_empty(cls, value: object) -> object:
        return [] if value is None else value

    @field_validator("required_actions", mode="before")
    @classmethod
    def _null_actions_are_none(cls, value: object) -> object:
        return {} if value is None else value


# ---- search pages -----------------------------------------------------------------------


class _Page(_LeapModel):
    next_page_token: str | None = None

    @field_validator("next_page_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if value == "" else value


class MeterPage(_Page):
    """One page of `POST /v2/meters/search`; `next_page_token` None on the last page.
    A page without `meters` (Leap sends such) is an empty page."""

    meters: list[LeapMeter] = Field(default_factory=list)


class EnrollmentPage(_Page):
    """One page of `POST /v2/meters/enrollments/search`; `next_page_token` None when done.
    A page without `meters` is an empty page."""

    meters: list[LeapEnrollment] = Field(default_factory=list)


# ---- search request ---------------------------------------------------------------------


def _aware_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp filters must be timezone-aware")
    return value.astimezone(UTC)


class MeterFilter(BaseModel):
    """Leap's `MeterFilterRequest`, the body of both search endpoints.

    Unset filters are left out of the request (`to_body()`). A page token is only valid
    with the filters that produced it: continue a search with `with_page_token()`.
    Timestamp filters must be timezone-aware; they are sent in UTC.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_size: int = Field(500, ge=1, le=500)
    page_token: str | None = None
    transmission_region: str | None = None
    customer_classification: str | None = None
    meter_ids: list[uuid.UUID] | None = Field(None, max_length=1000)
    partner_references: list[str] | None = Field(None, min_length=1, max_length=1000)
    global_enrollment_statuses: list[str] | None = Field(None, min_length=1, max_length=5)
    meter_types: list[str] | None = Field(None, min_length=1, max_length=20)
    load_types: list[str] | None = Field(None, min_length=1, max_length=20)
    customer_groups: list[str] | None = Field(None, min_length=1, max_length=20)
    tags: list[str] | None = Field(None, min_length=1, max_length=20)
    last_modified_date_time: datetime | None = None
    created_after_date_time: datetime | None = None
    created_before_date_time: datetime | None = None
    partner_action_required: bool | None = None
    exclude_archived: bool | None = None
    connection_reference_ids: list[str] | None = Field(None, min_length=1, max_length=100)
    action_type: list[str] | None = Field(None, min_length=1, max_length=20)

    @field_validator(
        "last_modified_date_time", "created_after_date_time", "created_before_date_time"
    )
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _aware_utc(value)

    def with_page_token(self, token: str | None) -> MeterFilter:
        """The same search, continued from `token` (None: from the start)."""
        return self.model_copy(update={"page_token": token})

    def to_body(self) -> JSON:
        """The JSON request body: set fields only, timestamps as `...Z` strings."""
        body: JSON = self.model_dump(mode="json", exclude_none=True)
        return body
