"""Storing records fetched from Leap's API, a page (or one meter) at a time, in bulk SQL.

Leap's records are authoritative over what webhooks said, with one rule: a record whose
`audit.updated_at` is older than the one already stored changes nothing (fetches can
finish out of order). A full run still marks every meter it saw, newer or not, so that
meters Leap no longer returns can be archived at the end.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.leap.models import LeapEnrollment, LeapMeter


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _newer(column: str, incoming: str = "EXCLUDED") -> str:
    """SQL: the incoming record is at least as new as the stored one (or either is unknown)."""
    return (
        f"(m.{column} IS NULL OR {incoming}.{column} IS NULL OR m.{column} <= {incoming}.{column})"
    )


def _take_if_newer(columns: Sequence[str], version: str) -> str:
    newer = _newer(version)
    return ",\n".join(f"{c} = CASE WHEN {newer} THEN EXCLUDED.{c} ELSE m.{c} END" for c in columns)


_METER_COLUMNS = (
    "partner_reference",
    "transmission_region",
    "meter_type",
    "utility_name",
    "load_zone",
    "leap_meter",
    "is_archived",
)

# The partner link history is kept like for webhook events: a changed reference is
# recorded on both partner records (the old one is read under the row lock, see
# app/meters/repository.py).
_STORE_METERS = text(
    f"""
    WITH incoming AS (
        SELECT * FROM jsonb_to_recordset(CAST(:records AS jsonb)) AS r(
            meter_id uuid, partner_reference text, transmission_region text, meter_type text,
            utility_name text, load_zone text, is_archived boolean,
            leap_updated_at timestamptz, leap_meter jsonb)
    ), partner AS (
        INSERT INTO partners (partner_reference)
        SELECT DISTINCT partner_reference FROM incoming WHERE partner_reference IS NOT NULL
        ON CONFLICT DO NOTHING
    ), stored AS (
        INSERT INTO meters AS m (meter_id, partner_reference, transmission_region, meter_type,
                                 utility_name, load_zone, is_archived, archived_at,
                                 leap_updated_at, leap_meter, seen_run_id)
        SELECT meter_id, partner_reference, transmission_region, meter_type, utility_name,
               load_zone, is_archived, CASE WHEN is_archived THEN now() END,
               leap_updated_at, leap_meter, CAST(:run_id AS bigint)
        FROM incoming
        ON CONFLICT (meter_id) DO UPDATE SET
            previous_partner_reference = m.partner_reference,
            {_take_if_newer(_METER_COLUMNS, "leap_updated_at")},
            archived_at = CASE WHEN {_newer("leap_updated_at")}
                THEN (CASE WHEN EXCLUDED.is_archived THEN COALESCE(m.archived_at, now()) END)
                ELSE m.archived_at END,
            leap_updated_at = GREATEST(m.leap_updated_at, EXCLUDED.leap_updated_at),
            seen_run_id = COALESCE(EXCLUDED.seen_run_id, m.seen_run_id),
            last_seen_at = now(),
            updated_at = CASE WHEN {_newer("leap_updated_at")} THEN now() ELSE m.updated_at END
        RETURNING m.meter_id, m.partner_reference AS now_ref,
                  m.previous_partner_reference AS was_ref
    ), unlinked AS (
        INSERT INTO partner_events (partner_reference, kind, meter_id)
        SELECT was_ref, 'meter_unlinked', meter_id FROM stored
        WHERE was_ref IS NOT NULL AND was_ref IS DISTINCT FROM now_ref
    ), linked AS (
        INSERT INTO partner_events (partner_reference, kind, meter_id)
        SELECT now_ref, 'meter_linked', meter_id FROM stored
        WHERE now_ref IS NOT NULL AND now_ref IS DISTINCT FROM was_ref
    )
    SELECT count(*) FROM stored
    """
)

_ENROLLMENT_COLUMNS = (
    "enrollment_status",
    "participation_preferences",
    "required_actions",
    "leap_enrollment",
)

_STORE_ENROLLMENTS = text(
    f"""
    WITH incoming AS (
        SELECT * FROM jsonb_to_recordset(CAST(:records AS jsonb)) AS r(
            meter_id uuid, transmission_region text, enrollment_status text,
            participation_preferences jsonb, required_actions jsonb,
            leap_enrollment_updated_at timestamptz, leap_enrollment jsonb)
    )
    INSERT INTO meters AS m (meter_id, transmission_region, enrollment_status,
                             participation_preferences, required_actions,
                             leap_enrollment_updated_at, leap_enrollment)
    SELECT meter_id, transmission_region, enrollment_status, participation_preferences,
           required_actions, leap_enrollment_updated_at, leap_enrollment
    FROM incoming
    ON CONFLICT (meter_id) DO UPDATE SET
        {_take_if_newer(_ENROLLMENT_COLUMNS, "leap_enrollment_updated_at")},
        leap_enrollment_updated_at =
            GREATEST(m.leap_enrollment_updated_at, EXCLUDED.leap_enrollment_updated_at),
        updated_at = CASE WHEN {_newer("leap_enrollment_updated_at")}
            THEN now() ELSE m.updated_at END
    RETURNING m.meter_id, m.leap_enrollment_updated_at AS version
    """
)

_UPSERT_GROUPS = text(
    """
    INSERT INTO market_groups (market_group_id, name)
    SELECT DISTINCT ON (g.id) g.id, g.name
    FROM jsonb_to_recordset(CAST(:groups AS jsonb)) AS g(id uuid, name text)
    ORDER BY g.id
    ON CONFLICT (market_group_id) DO UPDATE
        SET name = COALESCE(EXCLUDED.name, market_groups.name), updated_at = now()
    """
)

# A meter's enrollment windows are replaced as a whole by its newest enrollment record.
_DROP_ENROLLMENT_WINDOWS = text(
    """
    DELETE FROM group_memberships
    WHERE source = 'enrollment' AND meter_id = ANY(CAST(:meter_ids AS uuid[]))
    """
)

_ADD_ENROLLMENT_WINDOWS = text(
    """
    WITH write AS (SELECT nextval('group_membership_seq') AS seq)
    INSERT INTO group_memberships
        (market_group_id, window_start, window_end, source, meter_id, seq)
    SELECT w.market_group_id, w.window_start, w.window_end, 'enrollment', w.meter_id, write.seq
    FROM write, jsonb_to_recordset(CAST(:windows AS jsonb)) AS w(
        meter_id uuid, market_group_id uuid, window_start timestamptz, window_end timestamptz)
    ON CONFLICT DO NOTHING
    """
)


def _meter_row(meter: LeapMeter) -> dict[str, Any]:
    return {
        "meter_id": str(meter.meter_id),
        "partner_reference": meter.partner_reference,
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
) -> int:
    rows = [_meter_row(m) for m in _dedupe(meters)]
    if not rows:
        return 0
    result = await session.execute(_STORE_METERS, {"records": json.dumps(rows), "run_id": run_id})
    return int(result.scalar_one())


async def store_enrollments(session: AsyncSession, enrollments: Sequence[LeapEnrollment]) -> int:
    records = _dedupe(enrollments)
    if not records:
        return 0
    result = await session.execute(
        _STORE_ENROLLMENTS, {"records": json.dumps([_enrollment_row(e) for e in records])}
    )
    # Only meters whose enrollment was taken (not an older record) get new windows.
    versions = {row.meter_id: row.version for row in result}
    taken = {
        e.meter_id
        for e in records
        if e.updated_at is None or versions.get(e.meter_id) in (None, e.updated_at)
    }
    windows: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    for enrollment in records:
        if enrollment.meter_id not in taken:
            continue
        for period in enrollment.program_enrollment:
            if period.market_group_id is None:
                continue
            groups.append({"id": str(period.market_group_id), "name": period.market_group_name})
            windows.append(
                {
                    "meter_id": str(enrollment.meter_id),
                    "market_group_id": str(period.market_group_id),
                    "window_start": _iso(period.delivery_period_start_date_time),
                    "window_end": _iso(period.delivery_period_end_date_time),
                }
            )
    if groups:
        await session.execute(_UPSERT_GROUPS, {"groups": json.dumps(groups)})
    if taken:
        await session.execute(_DROP_ENROLLMENT_WINDOWS, {"meter_ids": [str(m) for m in taken]})
    if windows:
        await session.execute(_ADD_ENROLLMENT_WINDOWS, {"windows": json.dumps(windows)})
    return len(records)
