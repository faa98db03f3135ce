"""Response models for meters, their enrollment view and participation."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel


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


class Location(BaseModel):
    customer_name: str | None = None
    company_name: str | None = None
    street_1: str | None = None
    street_2: str | None = None
    city: str | None = None
    state_or_province_code: str | None = None
    postal_code: str | None = None
    country_code: str | None = None


class GroupOnDate(BaseModel):
    trade_date: date
    trade_date_start: datetime
    market_group_id: uuid.UUID | None
    market_group_name: str | None


class EnrollmentSummary(BaseModel):
    status: str | None
    active_from: datetime | None
    active_to: datetime | None
    open_required_actions: int


class MeterOut(BaseModel):
    meter_id: uuid.UUID
    partner_reference: str | None
    transmission_region: str | None
    meter_type: str | None
    is_archived: bool
    grid: Grid
    utility: Utility
    location: Location
    enrollment: EnrollmentSummary
    group_today: GroupOnDate
    # "api" once a record from Leap's API was stored, "webhook" while only events are known.
    details_source: str
    first_seen_at: datetime
    last_seen_at: datetime
    updated_at: datetime
    leap_updated_at: datetime | None


class EnrollmentView(BaseModel):
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
    meter_id: uuid.UUID
    transmission_region: str | None
    time_zone: str
    participation: list[GroupOnDate]
