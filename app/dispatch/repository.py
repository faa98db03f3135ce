"""SQL that writes dispatches: timeslots, their meter lists, drift checks and refreshes.

Bulk statements throughout: a group dispatch's 100k meter ids go in as one array, and a
body's timeslots as one JSON array, whatever their number.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, UUID
from sqlalchemy.ext.asyncio import AsyncSession

_UUIDS = ARRAY(UUID(as_uuid=True))
_IDS = ARRAY(BIGINT)


@dataclass(slots=True)
class DispatchRow:
    """One timeslot as stored (identity: kind, dispatch_event_id, integration_test)."""

    kind: str
    dispatch_event_id: uuid.UUID
    integration_test: bool
    market_group_id: uuid.UUID | None
    meter_set_id: int
    start_time: datetime
    end_time: datetime
    trade_date: date
    trade_date_start: datetime
    energy_kw: float | None
    nomination_kw: float | None
    cancelled: bool
    programs: list[str]
    priority: int | None
    is_voluntary: bool | None
    performance_compensation_cap: str | None
    dispatch_event_types: list[str]
    communication_test: bool
    source: str
    webhook_event_id: uuid.UUID | None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime | date) else value
            if isinstance(value, uuid.UUID):
                out[name] = str(value)
        return out


# ---- meter lists -------------------------------------------------------------------------

_NEW_GROUP_SET = text(
    """
    INSERT INTO dispatch_meter_sets (list_sha256, meter_count) VALUES (:sha, :count)
    ON CONFLICT (list_sha256) DO NOTHING
    RETURNING set_id
    """
)
_FIND_GROUP_SET = text("SELECT set_id FROM dispatch_meter_sets WHERE list_sha256 = :sha")
# Sorted ids land in index order (cheaper for 100k rows).
_ADD_SET_MEMBERS = text(
    """
    INSERT INTO dispatch_set_meters (set_id, meter_id)
    SELECT :set_id, ids.meter_id FROM unnest(CAST(:meter_ids AS uuid[])) AS ids(meter_id)
    """
).bindparams(bindparam("meter_ids", type_=_UUIDS))


def list_digest(sorted_ids: Sequence[uuid.UUID]) -> bytes:
    return hashlib.sha256(b"".join(m.bytes for m in sorted_ids)).digest()


async def group_meter_set(session: AsyncSession, sorted_ids: list[uuid.UUID]) -> int:
    """The set holding exactly these (sorted, distinct) ids, created when new."""
    sha = list_digest(sorted_ids)
    set_id = await session.scalar(_NEW_GROUP_SET, {"sha": sha, "count": len(sorted_ids)})
    if set_id is None:
        # Same list seen before (or written concurrently and now committed): reuse it.
        found = await session.scalar(_FIND_GROUP_SET, {"sha": sha})
        assert found is not None
        return int(found)
    if sorted_ids:
        await session.execute(_ADD_SET_MEMBERS, {"set_id": set_id, "meter_ids": sorted_ids})
    return int(set_id)


_NEW_OWN_SETS = text(
    "INSERT INTO dispatch_meter_sets (meter_count) SELECT 0 FROM generate_series(1, :n) "
    "RETURNING set_id"
)


async def new_own_sets(session: AsyncSession, count: int) -> list[int]:
    """Empty lists for new meter dispatches (filled by add_to_own_sets)."""
    if count == 0:
        return []
    return [int(r) for r in (await session.scalars(_NEW_OWN_SETS, {"n": count})).all()]


_ADD_PAIRS = text(
    """
    INSERT INTO dispatch_set_meters (set_id, meter_id)
    SELECT * FROM unnest(CAST(:set_ids AS bigint[]), CAST(:meter_ids AS uuid[]))
    ON CONFLICT DO NOTHING
    """
).bindparams(bindparam("set_ids", type_=_IDS), bindparam("meter_ids", type_=_UUIDS))
_RECOUNT = text(
    """
    UPDATE dispatch_meter_sets s
    SET meter_count = (SELECT count(*) FROM dispatch_set_meters m WHERE m.set_id = s.set_id)
    WHERE s.set_id = ANY(CAST(:set_ids AS bigint[]))
    """
).bindparams(bindparam("set_ids", type_=_IDS))


async def add_to_own_sets(session: AsyncSession, pairs: list[tuple[int, uuid.UUID]]) -> None:
    """A meter dispatch's list grows with every meter a body names for it."""
    if not pairs:
        return
    set_ids = [s for s, _ in pairs]
    await session.execute(_ADD_PAIRS, {"set_ids": set_ids, "meter_ids": [m for _, m in pairs]})
    await session.execute(_RECOUNT, {"set_ids": sorted(set(set_ids))})


# ---- timeslots ---------------------------------------------------------------------------

_EXISTING = text(
    """
    SELECT d.id, d.kind, d.dispatch_event_id, d.integration_test, d.meter_set_id
    FROM dispatches d
    JOIN jsonb_to_recordset(CAST(:keys AS jsonb))
         AS k(kind text, dispatch_event_id uuid, integration_test boolean)
      ON (d.kind, d.dispatch_event_id, d.integration_test)
       = (k.kind, k.dispatch_event_id, k.integration_test)
    ORDER BY d.id
    FOR UPDATE OF d
    """
)

_COLUMNS = (
    "kind, dispatch_event_id, integration_test, market_group_id, meter_set_id, start_time, "
    "end_time, trade_date, trade_date_start, energy_kw, nomination_kw, cancelled, programs, "
    "priority, is_voluntary, performance_compensation_cap, dispatch_event_types, "
    "communication_test, source, webhook_event_id"
)
# Every field takes the later word; a meter dispatch keeps its own (growing) meter list.
_UPSERT = text(
    f"""
    INSERT INTO dispatches ({_COLUMNS})
    SELECT r.kind, r.dispatch_event_id, r.integration_test, r.market_group_id, r.meter_set_id,
           r.start_time, r.end_time, r.trade_date, r.trade_date_start, r.energy_kw,
           r.nomination_kw, r.cancelled,
           ARRAY(SELECT jsonb_array_elements_text(r.programs)),
           r.priority, r.is_voluntary, r.performance_compensation_cap,
           ARRAY(SELECT jsonb_array_elements_text(r.dispatch_event_types)),
           r.communication_test, r.source, r.webhook_event_id
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        kind text, dispatch_event_id uuid, integration_test boolean, market_group_id uuid,
        meter_set_id bigint, start_time timestamptz, end_time timestamptz, trade_date date,
        trade_date_start timestamptz, energy_kw double precision,
        nomination_kw double precision, cancelled boolean, programs jsonb, priority integer,
        is_voluntary boolean, performance_compensation_cap text, dispatch_event_types jsonb,
        communication_test boolean, source text, webhook_event_id uuid)
    ON CONFLICT (kind, dispatch_event_id, integration_test) DO UPDATE SET
        market_group_id = EXCLUDED.market_group_id,
        meter_set_id = CASE WHEN dispatches.kind = 'group'
                            THEN EXCLUDED.meter_set_id ELSE dispatches.meter_set_id END,
        start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time,
        trade_date = EXCLUDED.trade_date, trade_date_start = EXCLUDED.trade_date_start,
        energy_kw = EXCLUDED.energy_kw, nomination_kw = EXCLUDED.nomination_kw,
        cancelled = EXCLUDED.cancelled, programs = EXCLUDED.programs,
        priority = EXCLUDED.priority, is_voluntary = EXCLUDED.is_voluntary,
        performance_compensation_cap = EXCLUDED.performance_compensation_cap,
        dispatch_event_types = EXCLUDED.dispatch_event_types,
        communication_test = EXCLUDED.communication_test,
        source = EXCLUDED.source,
        webhook_event_id = COALESCE(EXCLUDED.webhook_event_id, dispatches.webhook_event_id),
        updated_at = now()
    RETURNING id, dispatch_event_id, meter_set_id
    """
)
# Group lists no timeslot points at any more (a later body replaced them).
_DROP_UNUSED_SETS = text(
    """
    DELETE FROM dispatch_meter_sets s
    WHERE s.set_id = ANY(CAST(:set_ids AS bigint[])) AND s.list_sha256 IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM dispatches d WHERE d.meter_set_id = s.set_id)
    """
).bindparams(bindparam("set_ids", type_=_IDS))


@dataclass(slots=True)
class Existing:
    id: int
    meter_set_id: int


async def lock_existing(
    session: AsyncSession, keys: list[tuple[str, uuid.UUID, bool]]
) -> dict[tuple[str, uuid.UUID, bool], Existing]:
    """Timeslots already stored under these identities, locked until commit."""
    payload = [{"kind": k, "dispatch_event_id": str(i), "integration_test": t} for k, i, t in keys]
    result = await session.execute(_EXISTING, {"keys": json.dumps(payload)})
    return {
        (r.kind, r.dispatch_event_id, r.integration_test): Existing(r.id, r.meter_set_id)
        for r in result
    }


async def upsert_dispatches(
    session: AsyncSession, rows: list[DispatchRow]
) -> dict[uuid.UUID, Existing]:
    """Insert or update timeslots; returns dispatch_event_id -> (row id, its meter list)."""
    if not rows:
        return {}
    payload = json.dumps([r.as_json() for r in rows])
    result = await session.execute(_UPSERT, {"rows": payload})
    return {r.dispatch_event_id: Existing(int(r.id), int(r.meter_set_id)) for r in result}


async def drop_unused_sets(session: AsyncSession, set_ids: set[int]) -> None:
    if set_ids:
        await session.execute(_DROP_UNUSED_SETS, {"set_ids": sorted(set_ids)})


# ---- drift -------------------------------------------------------------------------------

_UPSERT_DRIFT = text(
    """
    INSERT INTO dispatch_drifts (dispatch_id, market_group_id, trade_date, checked_at,
                                 leap_only_count, local_only_count, leap_only, local_only)
    VALUES (:dispatch_id, :group_id, :trade_date, now(), :leap_only_count, :local_only_count,
            :leap_only, :local_only)
    ON CONFLICT (dispatch_id) DO UPDATE SET
        market_group_id = EXCLUDED.market_group_id, trade_date = EXCLUDED.trade_date,
        checked_at = EXCLUDED.checked_at, leap_only_count = EXCLUDED.leap_only_count,
        local_only_count = EXCLUDED.local_only_count, leap_only = EXCLUDED.leap_only,
        local_only = EXCLUDED.local_only
    """
).bindparams(bindparam("leap_only", type_=_UUIDS), bindparam("local_only", type_=_UUIDS))

DRIFT_IDS_KEPT = 1000

_CLEAR_DRIFTS = text(
    "DELETE FROM dispatch_drifts WHERE dispatch_id = ANY(CAST(:ids AS bigint[]))"
).bindparams(bindparam("ids", type_=_IDS))


async def clear_drifts(session: AsyncSession, dispatch_ids: list[int]) -> None:
    """A cancelled timeslot has no drift: nobody acts on it."""
    if dispatch_ids:
        await session.execute(_CLEAR_DRIFTS, {"ids": dispatch_ids})


_PREVIOUS_DRIFTS = text(
    """
    SELECT dispatch_id, leap_only_count, local_only_count, leap_only, local_only
    FROM dispatch_drifts WHERE dispatch_id = ANY(CAST(:ids AS bigint[]))
    """
).bindparams(bindparam("ids", type_=_IDS))

DriftKey = tuple[int, int, tuple[uuid.UUID, ...], tuple[uuid.UUID, ...]]


def drift_key(leap_only: list[uuid.UUID], local_only: list[uuid.UUID]) -> DriftKey:
    """What a stored drift records, to tell a new finding from one already reported."""
    return (
        len(leap_only),
        len(local_only),
        tuple(leap_only[:DRIFT_IDS_KEPT]),
        tuple(local_only[:DRIFT_IDS_KEPT]),
    )


async def previous_drifts(session: AsyncSession, dispatch_ids: list[int]) -> dict[int, DriftKey]:
    result = await session.execute(_PREVIOUS_DRIFTS, {"ids": dispatch_ids})
    return {
        r.dispatch_id: (
            r.leap_only_count,
            r.local_only_count,
            tuple(r.leap_only),
            tuple(r.local_only),
        )
        for r in result
    }


async def record_drift(
    session: AsyncSession,
    dispatch_id: int,
    group_id: uuid.UUID,
    trade_date: date,
    leap_only: list[uuid.UUID],
    local_only: list[uuid.UUID],
) -> None:
    await session.execute(
        _UPSERT_DRIFT,
        {
            "dispatch_id": dispatch_id,
            "group_id": group_id,
            "trade_date": trade_date,
            "leap_only_count": len(leap_only),
            "local_only_count": len(local_only),
            "leap_only": leap_only[:DRIFT_IDS_KEPT],
            "local_only": local_only[:DRIFT_IDS_KEPT],
        },
    )


# ---- zones and refreshes -----------------------------------------------------------------

_GROUP_MEMBER_REGION = text(
    """
    SELECT m.transmission_region FROM group_memberships gm
    JOIN meters m ON m.meter_id = gm.meter_id
    WHERE gm.market_group_id = :group_id AND m.transmission_region IS NOT NULL
    LIMIT 1
    """
)
_LISTED_REGION = text(
    """
    SELECT transmission_region FROM meters
    WHERE meter_id = ANY(CAST(:meter_ids AS uuid[])) AND transmission_region IS NOT NULL
    LIMIT 1
    """
).bindparams(bindparam("meter_ids", type_=_UUIDS))
_METER_REGIONS = text(
    "SELECT meter_id, transmission_region FROM meters WHERE meter_id = ANY(CAST(:ids AS uuid[]))"
).bindparams(bindparam("ids", type_=_UUIDS))


async def group_region(
    session: AsyncSession, group_id: uuid.UUID, listed: list[uuid.UUID]
) -> str | None:
    """The market of a group: a known member's region, else one of Leap's listed meters'."""
    region = await session.scalar(_GROUP_MEMBER_REGION, {"group_id": group_id})
    if region is None and listed:
        region = await session.scalar(_LISTED_REGION, {"meter_ids": listed[:1000]})
    return str(region) if region is not None else None


async def meter_regions(
    session: AsyncSession, meter_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    result = await session.execute(_METER_REGIONS, {"ids": meter_ids})
    return {r.meter_id: r.transmission_region for r in result}
