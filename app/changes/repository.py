"""SQL for the change feed: the only writer of `changes` (and of its retention mark).

Why the feed is ordered by writing transaction, not by insert (docs/decisions.md):
commit order is not insert order, so a reader walking a plain sequence would pass a row
whose transaction commits later with a lower id, and never see it. Each row carries the
id of the transaction that wrote it (`xid`, defaulting to `pg_current_xact_id()`); the
position of a row is (xid, id). A reader only returns rows whose transaction is older
than the oldest transaction still running (`pg_snapshot_xmin` of its own snapshot):
those transactions have all ended, so nothing can ever again appear below that horizon.
A cursor is (xid, id) and every row past it appears in order, exactly once.

Writers compose the fragments here into their own statements (the one-statement webhook
hot path) or call the functions with their session: a change exists exactly when the
effect it describes was committed.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# Only for bench/ingest.py's side-by-side run: with this set, writers record nothing.
RECORDING = os.environ.get("METER_SYNC_BENCH_FEED_OFF") != "1"


class ChangeType(StrEnum):
    METER_UPSERTED = "meter.upserted"
    METER_LINKED = "meter.linked"
    METER_UNLINKED = "meter.unlinked"
    METER_ARCHIVED = "meter.archived"
    ENROLLMENT_CHANGED = "enrollment.changed"
    GROUP_CHANGED = "group.changed"
    DISPATCH_RECEIVED = "dispatch.received"
    DISPATCH_UPDATED = "dispatch.updated"
    DISPATCH_DRIFT = "dispatch.drift"


_COLUMNS = "type, meter_id, partner_reference, market_group_id, dispatch_event_id, summary"


def record_cte(name: str, rows: str) -> str:
    """A CTE that records each row of `rows`, a SELECT of (type, meter_id,
    partner_reference, market_group_id, dispatch_event_id, summary jsonb)."""
    if not RECORDING:
        return f"{name} AS (SELECT 1)"
    return f"{name} AS (INSERT INTO changes ({_COLUMNS}) {rows})"


def meter_changes_cte(name: str, moves: str, kind: str, summary: str = "'{}'::jsonb") -> str:
    """A CTE recording, for each row of `moves` (meter_id, was_ref, now_ref), a change of
    type `kind` (SQL over `mv`), and the link moves by the partner link-history rule: the
    old reference unlinked, the new one linked (the upsert's own `previous_partner_reference`
    under the row lock, as in partners.link_history_ctes)."""
    rows = f"""
        SELECT {kind}, mv.meter_id, mv.now_ref, NULL::uuid, NULL::uuid, {summary}
        FROM {moves} mv
        UNION ALL
        SELECT '{ChangeType.METER_UNLINKED}', mv.meter_id, mv.was_ref, NULL, NULL,
               jsonb_build_object('partner_reference_now', mv.now_ref)
        FROM {moves} mv
        WHERE mv.was_ref IS NOT NULL AND mv.was_ref IS DISTINCT FROM mv.now_ref
        UNION ALL
        SELECT '{ChangeType.METER_LINKED}', mv.meter_id, mv.now_ref, NULL, NULL,
               jsonb_build_object('partner_reference_before', mv.was_ref)
        FROM {moves} mv
        WHERE mv.now_ref IS NOT NULL AND mv.now_ref IS DISTINCT FROM mv.was_ref"""
    return record_cte(name, rows)


def archived_cte(name: str, archived: str) -> str:
    """A CTE recording `meter.archived` for each (meter_id, partner_reference) of `archived`."""
    rows = f"""SELECT '{ChangeType.METER_ARCHIVED}', a.meter_id, a.partner_reference,
                      NULL::uuid, NULL::uuid, '{{}}'::jsonb FROM {archived} a"""
    return record_cte(name, rows)


_RECORD_ONE = text(
    f"""INSERT INTO changes ({_COLUMNS})
    VALUES (:type, :meter_id, :partner_reference, :market_group_id, :dispatch_event_id,
            CAST(:summary AS jsonb))"""
)

_RECORD_METERS = text(
    f"""INSERT INTO changes ({_COLUMNS})
    SELECT :type, m.meter_id, m.partner_reference, NULL, NULL, '{{}}'::jsonb
    FROM unnest(CAST(:meter_ids AS uuid[])) AS ids(meter_id)
    LEFT JOIN meters m ON m.meter_id = ids.meter_id
    ORDER BY ids.meter_id"""
).bindparams(bindparam("meter_ids", type_=ARRAY(UUID(as_uuid=True))))


async def record(
    session: AsyncSession | AsyncConnection,
    change_type: ChangeType,
    *,
    meter_id: uuid.UUID | None = None,
    partner_reference: str | None = None,
    market_group_id: uuid.UUID | None = None,
    dispatch_event_id: uuid.UUID | None = None,
    summary: dict[str, Any] | None = None,
) -> None:
    """Record one change in the caller's transaction."""
    if not RECORDING:
        return
    await session.execute(
        _RECORD_ONE,
        {
            "type": change_type,
            "meter_id": meter_id,
            "partner_reference": partner_reference,
            "market_group_id": market_group_id,
            "dispatch_event_id": dispatch_event_id,
            "summary": json.dumps(summary or {}),
        },
    )


async def record_meters(
    session: AsyncSession, change_type: ChangeType, meter_ids: Sequence[uuid.UUID]
) -> None:
    """One change per meter (with its current reference), in one statement."""
    if RECORDING and meter_ids:
        await session.execute(_RECORD_METERS, {"type": change_type, "meter_ids": list(meter_ids)})


async def record_group_change(
    session: AsyncSession, group_id: uuid.UUID, first_day: date, last_day: date
) -> None:
    """`group.changed`: the group's rosters from `first_day` to `last_day` may differ;
    the members are read from the roster (behind its own cursor), not copied here."""
    await record(
        session,
        ChangeType.GROUP_CHANGED,
        market_group_id=group_id,
        summary={
            "first_trade_date": first_day.isoformat(),
            "last_trade_date": last_day.isoformat(),
        },
    )


# ---- reads -----------------------------------------------------------------------------

# Rows of transactions older than every running one: complete, and final (see above).
# Transaction ids are the server's, not the database's: a transaction running in another
# database on the same server would hold the feed back for nothing, so those that
# pg_stat_activity shows as another database's are left out (a fact that cannot go
# stale: an xid is never reused). What cannot be shown so (not visible to this role,
# ended meanwhile) counts as ours: the feed waits for it, it never passes it.
_HORIZON = """(SELECT COALESCE(
        (SELECT min(x) FROM pg_snapshot_xip(s.snap) AS x
         WHERE xid(x) NOT IN (
             SELECT a.backend_xid FROM pg_stat_activity a
             WHERE a.backend_xid IS NOT NULL AND a.datid IS DISTINCT FROM (
                 SELECT oid FROM pg_database WHERE datname = current_database()))),
        pg_snapshot_xmax(s.snap))
    FROM (SELECT pg_current_snapshot() AS snap) AS s)"""
_AFTER = "(c.xid, c.id) > (CAST(CAST(:xid AS text) AS xid8), CAST(:id AS bigint))"
_TYPES = "(CAST(:types AS text[]) IS NULL OR c.type = ANY(CAST(:types AS text[])))"

_PAGE = text(
    f"""
    SELECT c.xid::text AS xid, c.id, c.type, c.at, c.meter_id, c.partner_reference,
           c.market_group_id, c.dispatch_event_id, c.summary
    FROM changes c
    WHERE {_AFTER} AND c.xid < {_HORIZON} AND {_TYPES}
    ORDER BY c.xid, c.id
    LIMIT :limit
    """
)

# Something past the cursor that a transaction still running holds back (or that is
# committed this very moment): worth looking again shortly rather than sleeping.
_HELD_BACK = text(f"SELECT EXISTS (SELECT 1 FROM changes c WHERE {_AFTER} AND {_TYPES})")

_END = text(f"SELECT {_HORIZON}::text")

# The last readable change (for the per-process watcher, app/changes/signal.py; asyncpg).
TAIL_SQL = f"""SELECT c.xid::text, c.id FROM changes c WHERE c.xid < {_HORIZON}
    ORDER BY c.xid DESC, c.id DESC LIMIT 1"""
_PRUNED = text("SELECT pruned_xid, pruned_id FROM change_feed_state")

Position = tuple[int, int]


def _position_params(after: Position, types: Sequence[str] | None) -> dict[str, Any]:
    return {"xid": str(after[0]), "id": after[1], "types": list(types) if types else None}


async def page(
    conn: AsyncSession | AsyncConnection,
    after: Position,
    limit: int,
    types: Sequence[str] | None,
) -> list[Row[Any]]:
    params = _position_params(after, types) | {"limit": limit}
    return list(await conn.execute(_PAGE, params))


async def held_back(
    conn: AsyncSession | AsyncConnection, after: Position, types: Sequence[str] | None
) -> bool:
    return bool((await conn.execute(_HELD_BACK, _position_params(after, types))).scalar_one())


async def end(conn: AsyncSession | AsyncConnection) -> Position:
    """A position every change not yet readable lies after: the horizon itself."""
    return int((await conn.execute(_END)).scalar_one()), 0


async def pruned_through(conn: AsyncSession | AsyncConnection) -> Position:
    """The last position retention deleted ((0, 0) when it never did)."""
    row = (await conn.execute(_PRUNED)).first()
    return (0, 0) if row is None else (int(row.pruned_xid), int(row.pruned_id))


# ---- retention -------------------------------------------------------------------------

# One batch, in feed order from the start: the old rows before the first young one go,
# and the mark moves to the last of them, so the feed below the mark is exactly what was
# deleted (a cursor below it answers 410).
_PRUNE = text(
    f"""
    WITH chunk AS (
        SELECT c.xid, c.id, c.at < :cutoff AS old FROM changes c
        WHERE c.xid < {_HORIZON}
        ORDER BY c.xid, c.id LIMIT :batch
    ), edge AS (
        SELECT xid, id FROM chunk WHERE NOT old ORDER BY xid, id LIMIT 1
    ), doomed AS (
        SELECT chunk.xid, chunk.id FROM chunk
        WHERE old AND NOT EXISTS (
            SELECT 1 FROM edge WHERE (edge.xid, edge.id) < (chunk.xid, chunk.id))
    ), gone AS (
        DELETE FROM changes c USING doomed d WHERE c.xid = d.xid AND c.id = d.id
        RETURNING c.xid, c.id
    ), last AS (
        SELECT xid, id FROM gone ORDER BY xid DESC, id DESC LIMIT 1
    ), mark AS (
        INSERT INTO change_feed_state (singleton, pruned_xid, pruned_id)
        SELECT true, xid::text::bigint, id FROM last
        ON CONFLICT (singleton) DO UPDATE
            SET pruned_xid = EXCLUDED.pruned_xid, pruned_id = EXCLUDED.pruned_id
    )
    SELECT count(*) FROM gone
    """
)


async def prune(session: AsyncSession, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` changes older than `cutoff` from the feed's start; how many."""
    return int((await session.execute(_PRUNE, {"cutoff": cutoff, "batch": batch})).scalar_one())


# ---- dispatches ------------------------------------------------------------------------

_DISPATCH_TYPES = {
    "received": ChangeType.DISPATCH_RECEIVED,
    "updated": ChangeType.DISPATCH_UPDATED,
    "drift": ChangeType.DISPATCH_DRIFT,
}


async def record_dispatch_change(
    session: AsyncSession | AsyncConnection,
    kind: str,
    dispatch_event_id: uuid.UUID,
    *,
    market_group_id: uuid.UUID | None = None,
    meter_id: uuid.UUID | None = None,
    summary: dict[str, Any] | None = None,
    is_test: bool = False,
) -> None:
    """For dispatch intake (`kind` "received", "updated" or "drift"), in its transaction.
    Test dispatches give no change (the contract's rule, kept here so callers need not)."""
    if is_test:
        return
    await record(
        session,
        _DISPATCH_TYPES[kind],
        dispatch_event_id=dispatch_event_id,
        market_group_id=market_group_id,
        meter_id=meter_id,
        summary=summary,
    )
