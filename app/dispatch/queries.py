"""Read side for dispatches: lists with filters, one dispatch with its drift, its meters,
a partner reference's dispatches, and the dispatch part of the sync status."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import RawStatement
from app.deps import Reads
from app.dispatch.schemas import (
    DispatchDetail,
    DispatchMeter,
    DispatchMeterPage,
    DispatchOut,
    DispatchPage,
    DispatchStatus,
    DriftOut,
    LastDrift,
)
from app.problems import Problem


@dataclass(frozen=True, slots=True)
class DispatchFilter:
    start: datetime | None = None
    end: datetime | None = None
    market_group_id: uuid.UUID | None = None
    meter_id: uuid.UUID | None = None
    partner_reference: str | None = None
    include_cancelled: bool = False
    include_tests: bool = False
    limit: int = 100
    cursor: str | None = None


# A meter dispatch naming a single meter shows it as meter_id.
_SELECT = """
    SELECT d.id, d.dispatch_event_id, d.kind, d.market_group_id, d.start_time, d.end_time,
           d.trade_date, d.trade_date_start, d.energy_kw, d.nomination_kw, d.cancelled,
           d.programs, d.priority, d.is_voluntary, d.performance_compensation_cap,
           d.dispatch_event_types, d.integration_test, d.communication_test,
           d.received_at, d.updated_at, d.meter_set_id, s.meter_count,
           CASE WHEN d.kind = 'meter' AND s.meter_count = 1 THEN (
               SELECT sm.meter_id FROM dispatch_set_meters sm WHERE sm.set_id = d.meter_set_id
               LIMIT 1) END AS meter_id
    FROM dispatches d JOIN dispatch_meter_sets s ON s.set_id = d.meter_set_id
"""

_OUT_FIELDS = tuple(DispatchOut.model_fields)


def _out(row: Any) -> DispatchOut:
    return DispatchOut.model_validate({name: getattr(row, name) for name in _OUT_FIELDS})


def _record_out(row: Any) -> DispatchOut:
    return DispatchOut.model_validate({name: row[name] for name in _OUT_FIELDS})


def encode_cursor(start: datetime, row_id: int) -> str:
    raw = f"{start.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start, row_id = raw.split("|")
        when = datetime.fromisoformat(start)
        if when.tzinfo is None:
            raise ValueError
        return when, int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(422, "cursor is not a next_cursor this API gave out") from None


def _where(f: DispatchFilter) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if f.start is not None:
        clauses.append("d.end_time > :start")
        params["start"] = f.start
    if f.end is not None:
        clauses.append("d.start_time < :end")
        params["end"] = f.end
    if f.market_group_id is not None:
        clauses.append("d.market_group_id = :group_id")
        params["group_id"] = f.market_group_id
    if f.meter_id is not None:
        clauses.append(
            "d.meter_set_id IN (SELECT sm.set_id FROM dispatch_set_meters sm "
            "WHERE sm.meter_id = :meter_id)"
        )
        params["meter_id"] = f.meter_id
    if f.partner_reference is not None:
        clauses.append(
            "d.meter_set_id IN (SELECT sm.set_id FROM dispatch_set_meters sm "
            "JOIN meters m ON m.meter_id = sm.meter_id WHERE m.partner_reference = :ref)"
        )
        params["ref"] = f.partner_reference
    if not f.include_cancelled:
        clauses.append("NOT d.cancelled")
    if not f.include_tests:
        clauses.append("NOT d.integration_test")
    if f.cursor is not None:
        params["after_start"], params["after_id"] = decode_cursor(f.cursor)
        clauses.append("(d.start_time, d.id) > (:after_start, :after_id)")
    return clauses, params


# The list's statement for each combination of filters (at most 2**7), compiled once.
_LISTS: dict[str, RawStatement] = {}


def _list_statement(clauses: list[str]) -> RawStatement:
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"{_SELECT} {where} ORDER BY d.start_time, d.id LIMIT :limit"
    found = _LISTS.get(sql)
    if found is None:
        found = _LISTS[sql] = RawStatement.compile(text(sql))
    return found


async def list_dispatches(reads: Reads, f: DispatchFilter) -> DispatchPage:
    """Timeslots matching every filter, by start time (then id), `limit` a page: one
    statement on the raw pool (the partner's lookup is a hot read)."""
    clauses, params = _where(f)
    rows = await reads.rows(_list_statement(clauses), {**params, "limit": f.limit + 1})
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    cursor = encode_cursor(rows[-1]["start_time"], rows[-1]["id"]) if more else None
    return DispatchPage(items=[_record_out(r) for r in rows], next_cursor=cursor)


# One id may name a group and a meter dispatch, or a test and a real one (Leap's examples
# reuse ids): without `kind`, a real dispatch comes first, then a group one.
_ONE = text(
    f"""{_SELECT}
    WHERE d.dispatch_event_id = :event_id AND (CAST(:kind AS text) IS NULL OR d.kind = :kind)
    ORDER BY d.integration_test, d.kind = 'meter' LIMIT 1
    """
)
_DRIFT = text(
    """
    SELECT checked_at, trade_date, leap_only_count, local_only_count, leap_only, local_only
    FROM dispatch_drifts WHERE dispatch_id = :id
    """
)


async def _find(session: AsyncSession, event_id: uuid.UUID, kind: str | None) -> Any:
    row = (await session.execute(_ONE, {"event_id": event_id, "kind": kind})).first()
    if row is None:
        raise Problem(404, "no dispatch with this id")
    return row


async def get_dispatch(
    session: AsyncSession, event_id: uuid.UUID, kind: str | None
) -> DispatchDetail:
    row = await _find(session, event_id, kind)
    drift = (await session.execute(_DRIFT, {"id": row.id})).first()
    return DispatchDetail(
        **_out(row).model_dump(),
        drift=DriftOut.model_validate(drift._asdict()) if drift is not None else None,
    )


_METERS = text(
    """
    SELECT sm.meter_id, m.partner_reference
    FROM dispatch_set_meters sm LEFT JOIN meters m ON m.meter_id = sm.meter_id
    WHERE sm.set_id = :set_id AND sm.meter_id > :after
    ORDER BY sm.meter_id LIMIT :limit
    """
)


async def dispatch_meters(
    session: AsyncSession,
    event_id: uuid.UUID,
    kind: str | None,
    cursor: uuid.UUID | None,
    limit: int,
) -> DispatchMeterPage:
    """Leap's list for the dispatch, each meter with its partner_reference (null when the
    meter is not known here yet)."""
    row = await _find(session, event_id, kind)
    params = {"set_id": row.meter_set_id, "after": cursor or uuid.UUID(int=0), "limit": limit}
    rows = list(await session.execute(_METERS, params))
    items = [
        DispatchMeter(meter_id=r.meter_id, partner_reference=r.partner_reference) for r in rows
    ]
    next_cursor = str(rows[-1].meter_id) if len(rows) == limit else None
    return DispatchMeterPage(items=items, next_cursor=next_cursor)


_STATUS = text(
    """
    SELECT (SELECT max(received_at) FROM (
                (SELECT received_at FROM webhook_events WHERE event_type = 'dispatch.meter'
                 ORDER BY seq DESC LIMIT 1)
                UNION ALL
                (SELECT received_at FROM webhook_events WHERE event_type = 'dispatch.group'
                 ORDER BY seq DESC LIMIT 1)) latest) AS last_received_at,
           (SELECT count(*) FROM dispatch_drifts
            WHERE leap_only_count + local_only_count > 0
              AND checked_at > now() - interval '24 hours') AS drift_24h
    """
)
_LAST_DRIFT = text(
    """
    SELECT d.dispatch_event_id, x.market_group_id, x.leap_only_count, x.local_only_count,
           x.checked_at
    FROM dispatch_drifts x JOIN dispatches d ON d.id = x.dispatch_id
    WHERE x.leap_only_count + x.local_only_count > 0
    ORDER BY x.checked_at DESC, x.dispatch_id DESC LIMIT 1
    """
)


async def status(session: AsyncSession) -> DispatchStatus:
    counts = (await session.execute(_STATUS)).one()
    last = (await session.execute(_LAST_DRIFT)).first()
    return DispatchStatus(
        last_received_at=counts.last_received_at,
        drift_24h=int(counts.drift_24h),
        last_drift=LastDrift.model_validate(last._asdict()) if last is not None else None,
    )
