"""Storing records fetched from Leap's API, a page (or one meter) at a time, in bulk SQL.

Leap's records are authoritative over what webhooks said, with one rule: a record whose
`audit.updated_at` is older than the one already stored changes nothing (fetches can
finish out of order). A full run still marks every meter it saw, newer or not, so that
meters Leap no longer returns can be archived at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.changes import repository as changes
from app.clock import iso_z
from app.groups import repository as groups
from app.groups.trade_dates import covered_days, zone_starting_at_midnight
from app.leap.models import LeapEnrollment, LeapMeter
from app.meters import repository as meter_repository
from app.meters.repository import StoredMeters


def _iso(value: datetime | None) -> str | None:
    return iso_z(value) if value is not None else None


def _meter_row(meter: LeapMeter) -> dict[str, Any]:
    return {
        "meter_id": str(meter.meter_id),
        "partner_reference": meter.partner_reference,
        "connection_references": sorted(set(meter.connection_references)) or None,
        "transmission_region": meter.transmission_region,
        "meter_type": meter.meter_type,
        "utility_name": meter.utility.utility_name if meter.utility else None,
        "load_zone": meter.site.load_zone if meter.site else None,
        "is_archived": meter.is_archived,
        "leap_updated_at": _iso(meter.updated_at),
        "leap_meter": meter.raw,
    }


def _enrollment_row(enrollment: LeapEnrollment) -> dict[str, Any]:
    return {
        "meter_id": str(enrollment.meter_id),
        "transmission_region": enrollment.transmission_region,
        "enrollment_status": enrollment.global_enrollment_status,
        "participation_preferences": [
            {
                "participation_preference": p.participation_preference,
                "start_time": _iso(p.start_time),
                "end_time": _iso(p.end_time),
            }
            for p in enrollment.participation_preferences
        ],
        "required_actions": enrollment.required_actions.model_dump(mode="json"),
        "leap_enrollment_updated_at": _iso(enrollment.updated_at),
        "leap_enrollment": enrollment.raw,
    }


ACTIVE = "ACTIVE"


def _period_zone(region: str | None, start: datetime, zones: Mapping[str, str]) -> ZoneInfo:
    """The meter's market zone; for a meter of unknown region, the zone in which the
    period starts at local midnight (Leap's periods start at midnight in the market)."""
    if region is not None and region in zones:
        return ZoneInfo(zones[region])
    return ZoneInfo(zone_starting_at_midnight(start, dict.fromkeys(zones.values())) or "UTC")


Record = TypeVar("Record", LeapMeter, LeapEnrollment)
_OLDEST = datetime.min.replace(tzinfo=UTC)


def _dedupe(records: Sequence[Record]) -> list[Record]:
    """One record per meter (the newest), or one statement would touch a row twice."""
    best: dict[uuid.UUID, Record] = {}
    for record in records:
        kept = best.get(record.meter_id)
        if kept is None or (record.updated_at or _OLDEST) >= (kept.updated_at or _OLDEST):
            best[record.meter_id] = record
    return list(best.values())


async def store_meters(
    session: AsyncSession, meters: Sequence[LeapMeter], run_id: int | None = None
) -> StoredMeters:
    rows = [_meter_row(m) for m in _dedupe(meters)]
    if not rows:
        return StoredMeters(0, 0, 0, 0)
    return await meter_repository.store_leap_meters(session, rows, run_id)


async def store_enrollments(
    session: AsyncSession, enrollments: Sequence[LeapEnrollment], zones: Mapping[str, str]
) -> int:
    """Store enrollment records; each taken record replaces its meter's enrollment windows
    with its ACTIVE program enrollments that name a market group (ELIGIBLE ones show in
    the enrollment view only: they do not put a meter in a roster)."""
    records = _dedupe(enrollments)
    if not records:
        return 0
    versions = await meter_repository.store_leap_enrollments(
        session, [_enrollment_row(e) for e in records]
    )
    # Only meters whose enrollment was taken (not an older record) get new windows.
    taken = {
        e.meter_id
        for e in records
        if e.updated_at is None or versions.get(e.meter_id) in (None, e.updated_at)
    }
    windows: list[dict[str, Any]] = []
    new_groups: list[dict[str, Any]] = []
    for enrollment in records:
        if enrollment.meter_id not in taken:
            continue
        for period in enrollment.program_enrollment:
            if period.market_group_id is None:
                continue
            new_groups.append({"id": str(period.market_group_id), "name": period.market_group_name})
            if period.enrollment_status != ACTIVE:
                continue
            start = period.delivery_period_start_date_time
            end = period.delivery_period_end_date_time
            # A delivery period's end is the start of its last day: that day is covered.
            first, last = covered_days(
                start,
                end,
                _period_zone(enrollment.transmission_region, start, zones),
                end_inclusive=True,
            )
            windows.append(
                {
                    "meter_id": str(enrollment.meter_id),
                    "market_group_id": str(period.market_group_id),
                    "window_start": _iso(start),
                    "window_end": _iso(end),
                    "first_day": first.isoformat(),
                    "last_day": last.isoformat(),
                }
            )
    await groups.upsert_groups(session, new_groups)
    await groups.replace_enrollment_windows(session, list(taken), windows)
    await changes.record_meters(session, changes.ChangeType.ENROLLMENT_CHANGED, sorted(taken))
    return len(records)
