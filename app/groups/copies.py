"""What each membership row carries so a roster reads neither `meters` nor the meter's other
windows: a copy of its meter's `partner_reference` and archived flag, and `unbeaten`.

A roster used to probe `meters` once per member and decide each member's winning window
against every window covering the day (a hash of all of them: at 1M memberships most of
a 100k roster's time). Copies written by two sides race under READ COMMITTED, so they
are kept right in three steps:

1. Every statement that writes a meter's reference or archived flag also updates that
   meter's membership rows whose copy differs (`copy_to_memberships_cte`), in the same
   statement, so under the meter's row lock.
2. Membership writers insert rows *unconfirmed* (`unbeaten` and `meter_archived` NULL),
   reading no other row. A roster reads the meter row where `meter_archived` is NULL,
   and while any row anywhere is unconfirmed it decides every member's window the slow
   way (correct at every moment, as slow as before only until confirmed). A meter writer
   that sees a row with no copy always writes one (NULL differs from any flag).
3. `confirm` (a worker loop) lists the unconfirmed writes (committed ones), then waits
   until every transaction that held a write lock on `group_memberships` at that moment
   has ended (as CREATE INDEX CONCURRENTLY waits): a meter or membership statement takes
   that lock before its snapshot, so whatever such a writer did is then committed and
   visible. Then, a batch of meters at a time in REPEATABLE READ transactions, it fills
   the copies from `meters`, sets `unbeaten` on the new rows (no higher-ranked window of
   the meter overlaps them) and clears it on the meter's older rows the new ones beat.
   A meter writer that updates one of those rows concurrently makes the batch fail with
   a serialization error instead of being overwritten by an older value; the batch is
   tried again. Only this round sets `unbeaten` true; deleting a window never does (a
   stale false costs a probe, never a wrong roster).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import locks
from app.groups.repository import rank


def copy_to_memberships_cte(name: str, source: str) -> str:
    """A CTE for meter writers: `source` yields `(meter_id, reference, archived)` for each
    meter the statement wrote; that meter's membership rows take those values where their
    copy differs (an unconfirmed copy always differs)."""
    return f"""{name} AS (
        UPDATE group_memberships gm
        SET partner_reference = s.reference, meter_archived = s.archived
        FROM ({source}) AS s(meter_id, reference, archived)
        WHERE gm.meter_id = s.meter_id
          AND (gm.partner_reference IS DISTINCT FROM s.reference
               OR gm.meter_archived IS DISTINCT FROM s.archived)
    )"""


log = logging.getLogger("meter_sync.worker")

SERIALIZATION_FAILURE = "40001"
DEADLOCK = "40P01"  # with a membership writer that deletes rows of the same meters
BATCH_METERS = 5000
BATCH_ATTEMPTS = 5

_UNCONFIRMED_WRITES = "SELECT DISTINCT seq FROM group_memberships WHERE unbeaten IS NULL"

# Transactions (other than ours) holding a write lock on group_memberships right now.
_WRITERS = """
    SELECT DISTINCT virtualtransaction FROM pg_locks
    WHERE locktype = 'relation' AND relation = 'group_memberships'::regclass
      AND mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                   'AccessExclusiveLock')
      AND pid <> pg_backend_pid()
"""
_STILL_RUNNING = """
    SELECT count(DISTINCT virtualtransaction) FROM pg_locks
    WHERE virtualtransaction = ANY(CAST(:vxids AS text[]))
"""

_OVERLAPS_HIGHER = f"""EXISTS (
    SELECT 1 FROM group_memberships o
    WHERE o.meter_id = gm.meter_id AND o.first_day <= gm.last_day
      AND o.last_day >= gm.first_day AND {rank("o")} > {rank("gm")})"""

# One batch: the next meters (in meter_id order) with unconfirmed rows of these writes.
# Their new rows get copies (an unknown meter's copy is (NULL, false); the aggregates
# make that one row) and `unbeaten`; their older unbeaten rows lose the flag where a
# new row beats them. The two updates touch different rows.
_FILL_BATCH = f"""
    WITH todo AS MATERIALIZED (
        SELECT DISTINCT meter_id FROM group_memberships
        WHERE unbeaten IS NULL AND seq = ANY(CAST(:seqs AS bigint[]))
          AND meter_id > :after
        ORDER BY meter_id LIMIT :n
    ), confirmed AS (
        UPDATE group_memberships gm
        SET (partner_reference, meter_archived) = (
                SELECT max(m.partner_reference), COALESCE(bool_or(m.is_archived), false)
                FROM meters m WHERE m.meter_id = gm.meter_id),
            unbeaten = NOT {_OVERLAPS_HIGHER}
        WHERE gm.meter_id IN (SELECT meter_id FROM todo) AND gm.unbeaten IS NULL
          AND gm.seq = ANY(CAST(:seqs AS bigint[]))
        RETURNING 1
    ), beaten AS (
        UPDATE group_memberships gm SET unbeaten = false
        WHERE gm.meter_id IN (SELECT meter_id FROM todo) AND gm.unbeaten
          AND {_OVERLAPS_HIGHER}
    )
    SELECT (SELECT count(*) FROM confirmed) AS rows,
           (SELECT meter_id FROM todo ORDER BY meter_id DESC LIMIT 1) AS last_meter
"""

WAIT_POLL_S = 0.01
_NIL = uuid.UUID(int=0)


class WritersStillRunning(Exception):
    """A transaction that may have missed the rows did not end in time."""


async def unconfirmed_writes(conn: AsyncConnection) -> list[int]:
    """The membership writes (seq) committed so far that left rows unconfirmed."""
    return list((await conn.execute(text(_UNCONFIRMED_WRITES))).scalars())


async def wait_for_writers(conn: AsyncConnection, timeout_s: float) -> None:
    """Return once every transaction writing `group_memberships` now has ended
    (`conn` in autocommit)."""
    writers = list((await conn.execute(text(_WRITERS))).scalars())
    deadline = time.monotonic() + timeout_s
    while writers and await conn.scalar(text(_STILL_RUNNING), {"vxids": writers}):
        if time.monotonic() > deadline:
            raise WritersStillRunning(f"{len(writers)} writers still running")
        await asyncio.sleep(WAIT_POLL_S)


async def fill_batch(
    conn: AsyncConnection, seqs: list[int], after: uuid.UUID
) -> tuple[int, uuid.UUID | None]:
    """Confirm the next batch of meters after `after` (`conn` in REPEATABLE READ, one
    transaction); rows confirmed, and the batch's last meter (None: nothing was left)."""
    row = (
        await conn.execute(text(_FILL_BATCH), {"seqs": seqs, "after": after, "n": BATCH_METERS})
    ).one()
    await conn.commit()
    return int(row.rows), row.last_meter


async def fill(conn: AsyncConnection, seqs: list[int], *, attempts: int = 1) -> int:
    """Confirm every unconfirmed row of these writes, batch by batch; a batch that loses
    a race to a meter writer (serialization failure) is tried up to `attempts` times."""
    total, after = 0, _NIL
    while True:
        for attempt in range(1, attempts + 1):
            try:
                rows, last = await fill_batch(conn, seqs, after)
                break
            except DBAPIError as exc:
                await conn.rollback()
                if not _lost_race(exc) or attempt == attempts:
                    raise
        if last is None:
            return total
        total, after = total + rows, last


def _lost_race(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in (SERIALIZATION_FAILURE, DEADLOCK)


async def confirm(engine: AsyncEngine, *, wait_s: float = 30.0) -> int:
    """Confirm every membership write committed so far; rows confirmed. One round at a
    time (an advisory lock); safe anywhere at any time."""
    async with engine.connect() as plain:
        conn = await plain.execution_options(isolation_level="AUTOCOMMIT")
        if not await locks.try_session_lock(conn, locks.MEMBERSHIP_CONFIRM):
            return 0
        try:
            seqs = await unconfirmed_writes(conn)
            if not seqs:
                return 0
            await wait_for_writers(conn, wait_s)
            await conn.commit()  # ends the autocommit phase, so the isolation can change
            rr = await plain.execution_options(isolation_level="REPEATABLE READ")
            return await fill(rr, seqs, attempts=BATCH_ATTEMPTS)
        finally:
            await conn.rollback()
            auto = await plain.execution_options(isolation_level="AUTOCOMMIT")
            await locks.unlock_session(auto, locks.MEMBERSHIP_CONFIRM)


async def confirm_round(engine: AsyncEngine) -> int:
    """The worker's step: `confirm`, where a lost race or a long writer is only logged
    (the rows stay unconfirmed, still read correctly, and the next round tries again)."""
    try:
        return await confirm(engine)
    except WritersStillRunning as exc:
        log.warning("membership rows not confirmed yet", extra={"reason": str(exc)})
    except DBAPIError as exc:
        if not _lost_race(exc):
            raise
        log.info("membership rows: meter writers kept winning the race; trying again")
    return 0
