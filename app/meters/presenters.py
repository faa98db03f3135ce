"""Builds the meter, enrollment and participation views from stored rows (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.clock import iso_z
from app.groups.schemas import GroupOnDate
from app.groups.trade_dates import covered_days
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
    periods: list[dict[str, Any]], statuses: set[str], today: date, tz: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    """Span of the delivery periods in `statuses` that cover or follow trade date `today`.

    A period's end is the start of its last day (Leap's rule), so it is in force through
    the whole of that local day.
    """
    starts: list[datetime] = []
    ends: list[datetime] = []
    for period in periods:
        start = _dt(period.get("delivery_period_start_date_time"))
        end = _dt(period.get("delivery_period_end_date_time"))
        if period.get("enrollment_status") not in statuses or start is None or end is None:
            continue
        if covered_days(start, end, tz, end_inclusive=True)[1] >= today:
            starts.append(start)
            ends.append(end)
    return (min(starts), max(ends)) if starts else (None, None)


def participation_timeline(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored preference windows as Leap applies them: one non-overlapping timeline.

    A window holds from its start until its own end or the next window's start, whichever
    comes first: a window starting later ends an earlier open-ended one, PARTICIPATE
    overrides IDLE and DISENROLL from its start, a new IDLE overrides what it overlaps.
    One instant is one window whatever its spelling (a later write for it wins).
    """
    by_start: dict[datetime, dict[str, Any]] = {}
    for window in windows:
        start = _dt(window.get("start_time"))
        if start is not None:
            by_start[start] = window
    ordered = sorted(by_start.items())
    timeline: list[dict[str, Any]] = []
    for i, (start, window) in enumerate(ordered):
        end = _dt(window.get("end_time"))
        following = ordered[i + 1][0] if i + 1 < len(ordered) else None
        if following is not None and (end is None or following < end):
            end = following
        if end is not None and end <= start:
            continue
        timeline.append(
            {
                **window,
                "start_time": iso_z(start),
                "end_time": iso_z(end) if end is not None else None,
            }
        )
    return timeline


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


def enrollment_view(meter: Meter, today: date, tz: ZoneInfo) -> EnrollmentView:
    programs = programs_of(meter)
    active = _span(programs, {"ACTIVE"}, today, tz)
    eligible = _span(programs, {"ACTIVE", "ELIGIBLE"}, today, tz)
    return EnrollmentView(
        meter_id=meter.meter_id,
        status=meter.enrollment_status,
        active_from=active[0],
        active_to=active[1],
        eligible_from=eligible[0],
        eligible_to=eligible[1],
        status_reasons=status_reasons(meter.required_actions),
        programs=programs,
        participation_preferences=participation_timeline(meter.participation_preferences),
        required_actions=meter.required_actions,
        updated_at=meter.updated_at,
    )


# Leap renamed device fields in its live definitions; older records use the old names.
_DEVICE_RENAMES = {"pv_connected": "is_connected_to_solar"}


def site_devices(site: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The site's devices with Leap's current field names (old names read too)."""
    devices = site.get("site_devices")
    shown: list[dict[str, Any]] = []
    for device in devices if isinstance(devices, list) else []:
        if not isinstance(device, Mapping):
            continue
        current: dict[str, Any] = {str(k): v for k, v in device.items() if k not in _DEVICE_RENAMES}
        for old, new in _DEVICE_RENAMES.items():
            if new not in current and old in device:
                current[new] = device[old]
        shown.append(current)
    return shown


def meter_out(meter: Meter, today: GroupOnDate, tz: ZoneInfo) -> MeterOut:
    record = meter.leap_meter
    site = _obj(record, "site")
    customer = _obj(record, "customer")
    utility = _obj(record, "utility")
    active = _span(programs_of(meter), {"ACTIVE"}, today.trade_date, tz)
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
            bill_service_agreement_number=utility.get("bill_service_agreement_number"),
            bill_customer_account_number=utility.get("bill_customer_account_number"),
        ),
        site_devices=site_devices(site),
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
