"""Response models for meters, their enrollment view and participation; the list's query."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app import examples
from app.groups.schemas import GroupOnDate
from app.groups.trade_dates import check_trade_date
from app.leap.events import EnrollmentStatus, TransmissionRegion
from app.params import IsoDate, IsoDateTime, QueryBool, QueryInt


class Grid(BaseModel):
    iso_rto: str | None
    load_zone: str | None


class Utility(BaseModel):
    name: str | None
    load_serving_entity: str | None = None
    service_account_number: str | None = None
    tariff: str | None = None
    voltage: str | None = None
    meter_serial_number: str | None = None
    bill_service_agreement_number: str | None = None
    bill_customer_account_number: str | None = None


class Location(BaseModel):
    customer_name: str | None = None
    company_name: str | None = None
    street_1: str | None = None
    street_2: str | None = None
    city: str | None = None
    state_or_province_code: str | None = None
    postal_code: str | None = None
    country_code: str | None = None


class EnrollmentSummary(BaseModel):
    status: str | None
    active_from: datetime | None
    active_to: datetime | None
    open_required_actions: int


class MeterOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.METER]})

    meter_id: uuid.UUID
    partner_reference: str | None
    transmission_region: str | None
    meter_type: str | None
    is_archived: bool
    grid: Grid
    utility: Utility
    location: Location
    site_devices: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The site's devices as Leap describes them, with its current field "
        "names (e.g. `is_connected_to_solar`, formerly `pv_connected`)",
    )
    enrollment: EnrollmentSummary
    group_today: GroupOnDate
    # "api" once a record from Leap's API was stored, "webhook" while only events are known.
    details_source: str
    first_seen_at: datetime
    last_seen_at: datetime
    updated_at: datetime
    leap_updated_at: datetime | None


class EnrollmentView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.ENROLLMENT]})

    meter_id: uuid.UUID
    status: str | None
    active_from: datetime | None
    active_to: datetime | None
    eligible_from: datetime | None
    eligible_to: datetime | None
    status_reasons: list[str]
    programs: list[dict[str, Any]]
    participation_preferences: list[dict[str, Any]]
    required_actions: dict[str, Any]
    updated_at: datetime


class ParticipationOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.PARTICIPATION]})

    meter_id: uuid.UUID
    transmission_region: str | None
    time_zone: str
    participation: list[GroupOnDate]


# PostgreSQL text cannot hold NUL: such a value could never match, so it is refused.
FilterText = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00]*$")]
# References are stored as sent, of any length.
ReferenceText = Annotated[str, Field(min_length=1, max_length=65_536, pattern=r"^[^\x00]*$")]


class MeterListQuery(BaseModel):
    """Filters of `GET /v1/meters`; all optional and combinable (AND)."""

    partner_reference: ReferenceText | None = Field(
        None,
        description="The partner's own reference of the meter (exact match)",
        examples=["acme-site-0042"],
    )
    # Enumerations are checked: a misspelt value is a 422 naming the allowed ones, not an
    # empty page. A value Leap adds later needs it added to app/leap/events.py.
    transmission_region: TransmissionRegion | None = Field(
        None, description="Leap's transmission region", examples=["CAISO"]
    )
    utility_name: FilterText | None = Field(
        None,
        description="The utility's name as Leap writes it (exact match)",
        examples=["PGE"],
    )
    load_zone: FilterText | None = Field(
        None, description="The meter's load zone (exact match)", examples=["SLAP_PGSB"]
    )
    enrollment_status: EnrollmentStatus | None = Field(
        None, description="Leap's global enrollment status", examples=["ACTIVE"]
    )
    market_group_id: uuid.UUID | None = Field(
        None,
        description="Meters in this group on `trade_date` (both or neither).",
        examples=["406720c2-0175-4137-9ff1-1641702292d4"],
    )
    trade_date: IsoDate | None = Field(
        None,
        description="`YYYY-MM-DD`, in each meter's market time zone, as in the roster.",
        examples=["2025-08-14"],
    )
    is_archived: QueryBool | None = Field(
        None,
        description="`true`: only archived meters; `false`: only live ones",
        examples=[False],
    )
    updated_since: IsoDateTime | None = Field(
        None,
        description="Changed at or after this instant (no offset means UTC).",
        examples=["2025-08-14T06:00:00Z"],
    )
    cursor: str | None = Field(
        None,
        max_length=64,
        description="The `next_cursor` of the previous page (an opaque string); omit for "
        "the first page",
    )
    limit: QueryInt = Field(100, ge=1, le=1000, description="Meters per page", examples=[100])

    @field_validator("trade_date")
    @classmethod
    def _in_range(cls, value: date | None) -> date | None:
        return None if value is None else check_trade_date(value)

    @field_validator("updated_since")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("updated_since is out of range") from None

    @model_validator(mode="after")
    def _group_needs_date(self) -> Self:
        if (self.market_group_id is None) != (self.trade_date is None):
            raise ValueError("market_group_id and trade_date go together")
        return self


class MeterSummary(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [examples.SUMMARY]}
    )

    meter_id: uuid.UUID
    partner_reference: str | None
    transmission_region: str | None
    meter_type: str | None
    utility_name: str | None
    load_zone: str | None
    enrollment_status: str | None
    is_archived: bool
    updated_at: datetime


class MeterPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.PAGE]})

    items: list[MeterSummary]
    # Pass back as `cursor` for the next page; null on the last page.
    next_cursor: str | None
