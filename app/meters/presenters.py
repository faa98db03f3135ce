"""Builds the meter, enrollment and participation views from stored rows (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.groups.schemas import GroupOnDate
from app.meters.schemas import (
    EnrollmentSummary,
    EnrollmentView,
    Grid,
    Location,
    MeterOut,
    Utility,
)
from app.models import Meter


def _dt(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _obj(record: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = (record or {}).get(key)
    return value if isinstance(value, Mapping) else {}


def _span(
    periods: list[dict[str, Any]], statuses: set[str], now: datetime
) -> tuple[datetime | None, datetime | None]:
    """Span of delivery periods in `statuses` that cover or follow `now`."""
    starts: list[datetime] = []
    ends: list[datetime] = []
    for period in periods:
        start = _dt(period.get("delivery_period_start_date_time"))
        end = _dt(period.get("delivery_period_end_date_time"))
        if period.get("enrollment_status") not in statuses or start is None or end is None:
            continue
        if end >= now or start >= now:
            starts.append(start)
            ends.append(end)
    return (min(starts), max(ends)) if starts else (None, None)


def programs_of(meter: Meter) -> list[dict[str, Any]]:
    programs = (meter.leap_enrollment or {}).get("program_enrollment")
    return [p for p in programs if isinstance(p, dict)] if isinstance(programs, list) else []


def status_reasons(required_actions: Mapping[str, Any]) -> list[str]:
    reasons: list[str] = []
    for side in ("partner", "leap"):
        actions = required_actions.get(side)
        for action in actions if isinstance(actions, list) else []:
            if isinstance(action, dict) and isinstance(action.get("action_description"), str):
                reasons.append(action["action_description"])
    return reasons


def enrollment_view(meter: Meter, now: datetime) -> EnrollmentView:
    programs = programs_of(meter)
    active = _span(programs, {"ACTIVE"}, now)
    eligible = _span(programs, {"ACTIVE", "ELIGIBLE"}, now)
    return EnrollmentView(
        meter_id=meter.meter_id,
        status=meter.enrollment_status,
        active_from=active[0],
        active_to=active[1],
        eligible_from=eligible[0],
        eligible_to=eligible[1],
        status_reasons=status_reasons(meter.required_actions),
        programs=programs,
        participation_preferences=meter.participation_preferences,
        required_actions=meter.required_actions,
        updated_at=meter.updated_at,
    )


def meter_out(meter: Meter, today: GroupOnDate, now: datetime) -> MeterOut:
    record = meter.leap_meter
    site = _obj(record, "site")
    customer = _obj(record, "customer")
    utility = _obj(record, "utility")
    active = _span(programs_of(meter), {"ACTIVE"}, now)
    open_actions = len(status_reasons(meter.required_actions))
    return MeterOut(
        meter_id=meter.meter_id,
        partner_reference=meter.partner_reference,
        transmission_region=meter.transmission_region,
        meter_type=meter.meter_type,
        is_archived=meter.is_archived,
        grid=Grid(
            iso_rto=meter.transmission_region, load_zone=meter.load_zone or site.get("load_zone")
        ),
        utility=Utility(
            name=meter.utility_name or utility.get("utility_name"),
            load_serving_entity=utility.get("load_serving_entity"),
            service_account_number=utility.get("electric_service_account_number"),
            tariff=utility.get("tariff"),
            voltage=utility.get("voltage"),
            meter_serial_number=utility.get("utility_meter_serial_number"),
        ),
        location=Location(
            customer_name=customer.get("end_customer_name"),
            company_name=customer.get("end_customer_company_name"),
            street_1=customer.get("street_1"),
            street_2=customer.get("street_2"),
            city=customer.get("city"),
            state_or_province_code=customer.get("state_or_province_code"),
            postal_code=customer.get("postal_code"),
            country_code=customer.get("country_code"),
        ),
        enrollment=EnrollmentSummary(
            status=meter.enrollment_status,
            active_from=active[0],
            active_to=active[1],
            open_required_actions=open_actions,
        ),
        group_today=today,
        details_source="api" if record is not None else "webhook",
        first_seen_at=meter.first_seen_at,
        last_seen_at=meter.last_seen_at,
        updated_at=meter.updated_at,
        leap_updated_at=meter.leap_updated_at,
    )
