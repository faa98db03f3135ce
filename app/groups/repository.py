"""SQL for market groups and membership windows (bulk statements, not row-by-row ORM).

Every membership row carries the trade dates it covers (`first_day`..`last_day`),
computed when it is written (app/groups/trade_dates.py: `covered_days`), so a roster is
a range test on dates, the same in every statement here and in Python's `window_for`.
Among the windows covering a day for one meter the latest start wins, then the later
write (seq); the remaining columns only make the order total.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app import locks

WEBHOOK = "webhook"
ENROLLMENT = "enrollment"

# ---- writes ----------------------------------------------------------------------------

_SET_GROUP_WINDOW = text(
    """
    INSERT INTO market_groups (market_group_id, name, window_start, window_end, time_zone,
                               source_event_id)
    VALUES (:group_id, :name, :start, :end, :zone, :event_id)
    ON CONFLICT (market_group_id) DO UPDATE SET
        name = EXCLUDED.name, window_start = EXCLUDED.window_start,
        window_end = EXCLUDED.window_end, time_zone = EXCLUDED.time_zone,
        source_event_id = EXCLUDED.source_event_id, updated_at = now()
    """
)

# Without fresh statistics PostgreSQL planned nested loops for the diff below: 10^10
# comparisons for a 100k roster. Hash joins only, for this transaction.
_HASH_JOINS_ONLY = text("SET LOCAL enable_nestloop = off")

# Everything known of the group that the new event does not say goes: other windows,
# other sources, members not listed. EXCEPT hashes both sides; rows already exactly as
# the event says stay (an unchanged roster rewrites nothing).
_DROP_UNLISTED = text(
    """
    DELETE FROM group_memberships gm
    USING (
        SELECT meter_id, window_start, window_end, source, first_day, last_day
        FROM group_memberships WHERE market_group_id = :group_id
        EXCEPT
        SELECT unnest(CAST(:meter_ids AS uuid[])), CAST(:start AS timestamptz),
               CAST(:end AS timestamptz), CAST(:source AS text), CAST(:first AS date),
               CAST(:last AS date)
    ) AS gone
    WHERE gm.market_group_id = :group_id AND gm.meter_id = gone.meter_id
      AND gm.window_start = gone.window_start AND gm.window_end = gone.window_end
      AND gm.source = gone.source
    """
).bindparams(bindparam("meter_ids", type_=ARRAY(UUID(as_uuid=True))))

# One seq for the whole write: it only orders windows against each other. Sorted, the
# index inserts land in order (measured: ~25% faster for 100k random ids).
_ADD_LISTED = text(
    """
    WITH write AS (SELECT nextval('group_membership_seq') AS seq)
    INSERT INTO group_memberships (market_group_id, window_start, window_end, source,
                                   meter_id, first_day, last_day, seq)
    SELECT :group_id, :start, :end, :source, ids.meter_id, :first, :last, write.seq
    FROM write, unnest(CAST(:meter_ids AS uuid[])) AS ids(meter_id)
    ORDER BY ids.meter_id
    ON CONFLICT DO NOTHING
    """
).bindparams(bindparam("meter_ids", type_=ARRAY(UUID(as_uuid=True))))

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
    WHERE source = :source AND meter_id = ANY(CAST(:meter_ids AS uuid[]))
    """
)

_ADD_ENROLLMENT_WINDOWS = text(
    """
    WITH write AS (SELECT nextval('group_membership_seq') AS seq)
    INSERT INTO group_memberships (market_group_id, window_start, window_end, source,
                                   meter_id, first_day, last_day, seq)
    SELECT w.market_group_id, w.window_start, w.window_end, :source, w.meter_id,
           w.first_day, w.last_day, write.seq
    FROM write, jsonb_to_recordset(CAST(:windows AS jsonb)) AS w(
        meter_id uuid, market_group_id uuid, window_start timestamptz, window_end timestamptz,
        first_day date, last_day date)
    ON CONFLICT DO NOTHING
    """
)


async def replace_group(
    session: AsyncSession,
    group_id: uuid.UUID,
    name: str | None,
    window: tuple[datetime, datetime],
    days: tuple[date, date],
    time_zone: str,
    meter_ids: list[uuid.UUID],
    event_id: uuid.UUID,
) -> None:
    """The group's one window and members become exactly these (group.updated `event_id`)."""
    params = {
        "event_id": event_id,
        "group_id": group_id,
        "name": name,
        "start": window[0],
        "end": window[1],
        "zone": time_zone,
        "source": WEBHOOK,
        "first": days[0],
        "last": days[1],
        "meter_ids": meter_ids,
    }
    # Concurrent updates of one group are applied one after the other.
    await locks.transaction_lock_on(session, f"market_group:{group_id}")
    await session.execute(_SET_GROUP_WINDOW, params)
    await session.execute(_HASH_JOINS_ONLY)
    await session.execute(_DROP_UNLISTED, params)
    await session.execute(_ADD_LISTED, params)


async def upsert_groups(session: AsyncSession, groups: list[dict[str, Any]]) -> None:
    """Create or rename groups from `[{"id", "name"}]` (a missing name keeps the old)."""
    if groups:
        await session.execute(_UPSERT_GROUPS, {"groups": json.dumps(groups)})


async def replace_enrollment_windows(
    session: AsyncSession, meter_ids: list[uuid.UUID], windows: list[dict[str, Any]]
) -> None:
    """These meters' enrollment windows become exactly `windows` (`[{"meter_id",
    "market_group_id", "window_start", "window_end", "first_day", "last_day"}]`)."""
    if meter_ids:
        await session.execute(
            _DROP_ENROLLMENT_WINDOWS,
            {"meter_ids": [str(m) for m in meter_ids], "source": ENROLLMENT},
        )
    if windows:
        await session.execute(
            _ADD_ENROLLMENT_WINDOWS, {"windows": json.dumps(windows), "source": ENROLLMENT}
        )


# ---- reads -----------------------------------------------------------------------------

# Row `c` of group_memberships covers :day and no other window of its meter outranks it.
_COVERS = "c.first_day <= {day} AND c.last_day >= {day}"


def rank(alias: str) -> str:
    """SQL: the tuple that ranks a meter's windows (greater wins) for row `alias`."""
    return (
        f"({alias}.window_start, {alias}.seq, {alias}.market_group_id, {alias}.window_end,"
        f" {alias}.source)"
    )


_OUTRANKED_ON = f"""EXISTS (
        SELECT 1 FROM group_memberships o
        WHERE o.meter_id = c.meter_id AND o.first_day <= {{day}} AND o.last_day >= {{day}}
          AND {rank("o")} > {rank("c")}
    )"""
# No membership row waits for the confirm round (app/groups/copies.py), so every row's
# `unbeaten` flag is current; evaluated once per statement.
_ALL_CONFIRMED = "(SELECT NOT EXISTS (SELECT 1 FROM group_memberships WHERE unbeaten IS NULL))"


def _decides(day: str) -> str:
    """Row `c` covers `day` and wins it: it is unbeaten (no higher-ranked window of its
    meter overlaps it) while every row is confirmed, or no higher-ranked window covering
    `day` exists (one probe on (meter_id, first_day))."""
    outranked = _OUTRANKED_ON.format(day=day)
    return f"{_COVERS.format(day=day)} AND ((c.unbeaten AND {_ALL_CONFIRMED}) OR NOT {outranked})"


def roster_cte(day: str = "CAST(:day AS date)") -> str:
    """A CTE `members(meter_id, partner_reference)`: group :group_id's roster on `day`
    (archived meters left out), for the roster and for statements that compare it with
    another list (dispatch drift). The reference and archived flag are the row's copies
    (app/groups/copies.py); a row not confirmed yet reads its meter row instead (the
    fence keeps the planner from hashing the whole meters table for those)."""
    return f"""members AS (
        SELECT c.meter_id,
               CASE WHEN c.meter_archived IS NULL THEN m.partner_reference
                    ELSE c.partner_reference END AS partner_reference
        FROM group_memberships c
        LEFT JOIN LATERAL (
            SELECT partner_reference, is_archived FROM meters
            WHERE meters.meter_id = c.meter_id AND c.meter_archived IS NULL OFFSET 0
        ) m ON true
        WHERE c.market_group_id = :group_id
          AND COALESCE(c.meter_archived, m.is_archived) IS NOT TRUE
          AND {_decides(day)}
    )"""


# One page of the roster, as the JSON array of its items, built by PostgreSQL: turning
# 100k rows into Python objects and back into JSON cost more than the query itself, and
# string_agg is ~40% cheaper here than json_agg(json_build_object(...)). One aggregate
# only: the page's size and last id are read off the text (RosterPage.of), which saved
# the materialized page and a sort of it (~50 ms of a 100k page).
_ITEM_START = '{"meter_id":"'
_ROSTER = text(
    f"""
    WITH {roster_cte()}
    SELECT '[' || COALESCE(string_agg(
               '{_ITEM_START}' || meter_id::text || '","partner_reference":'
               || COALESCE(to_json(partner_reference)::text, 'null') || '}}',
               ',' ORDER BY meter_id), '') || ']' AS items
    FROM (SELECT meter_id, partner_reference FROM members
          WHERE meter_id > :after ORDER BY meter_id LIMIT :limit) AS page
    """
)

# Every group's roster size on :day, or on today in each group's own zone when :day is
# null (groups with no member that day are left out).
_COUNTS = text(
    f"""
    WITH g AS (
        SELECT market_group_id, name, time_zone,
               COALESCE(CAST(:day AS date),
                        (now() AT TIME ZONE COALESCE(time_zone, 'UTC'))::date) AS day
        FROM market_groups
    )
    SELECT g.market_group_id, g.name, g.time_zone, g.day, count(*) AS meter_count,
           -- The members' region when they share one (a group is one market's).
           CASE WHEN count(DISTINCT m.transmission_region) = 1
                THEN min(m.transmission_region) END AS transmission_region
    FROM g
    JOIN group_memberships c ON c.market_group_id = g.market_group_id
    LEFT JOIN meters m ON m.meter_id = c.meter_id
    WHERE m.is_archived IS NOT TRUE AND {_decides("g.day")}
    GROUP BY g.market_group_id, g.name, g.time_zone, g.day
    ORDER BY g.name, g.market_group_id
    """
)

# The order that ranks a meter's membership windows (the last one wins a tie), for every
# statement that hands windows to app.groups.trade_dates (`gm` is group_memberships).
WINDOW_ORDER = rank("gm")[1:-1]


def windows_array(meter_ids: str) -> str:
    """A scalar subquery: the windows of the meters `meter_ids` (a SELECT of meter ids, or
    a correlated column) as an array of anonymous records in WINDOW_ORDER, for one-statement
    lookups; `trade_dates.windows_by_meter` reads it."""
    return f"""(SELECT array_agg(ROW(gm.meter_id, gm.market_group_id, gm.window_start,
                                    gm.first_day, gm.last_day, gm.seq, g.name, g.time_zone)
                      ORDER BY {WINDOW_ORDER})
               FROM group_memberships gm
               LEFT JOIN market_groups g ON g.market_group_id = gm.market_group_id
               WHERE gm.meter_id IN ({meter_ids}))"""


_NIL = uuid.UUID(int=0)
# A 100k roster's sort and anti-join spilled to disk with the default 4 MB (measured:
# ~15% of the query); for this transaction only.
_ROSTER_MEMORY = text("SET LOCAL work_mem = '64MB'")


@dataclass(frozen=True, slots=True)
class RosterPage:
    count: int
    last_meter_id: uuid.UUID | None
    items_json: str  # a JSON array of {"meter_id", "partner_reference"}

    @classmethod
    def of(cls, items_json: str) -> RosterPage:
        """Each item starts with `{"meter_id":"`, which cannot occur inside a JSON string
        value (its quotes would be escaped), so counting it counts the items."""
        last = items_json.rfind(_ITEM_START)
        if last < 0:
            return cls(0, None, items_json)
        start = last + len(_ITEM_START)
        return cls(
            items_json.count(_ITEM_START), uuid.UUID(items_json[start : start + 36]), items_json
        )


async def roster(
    session: AsyncSession,
    group_id: uuid.UUID,
    day: date,
    *,
    after: uuid.UUID | None,
    limit: int,
) -> RosterPage:
    """Group `group_id` on trade date `day`, members in meter_id order after `after`."""
    await session.execute(_ROSTER_MEMORY)
    items = await session.scalar(
        _ROSTER, {"group_id": group_id, "day": day, "after": after or _NIL, "limit": limit}
    )
    return RosterPage.of(str(items))


async def roster_members(
    session: AsyncSession, group_id: uuid.UUID, day: date
) -> list[tuple[uuid.UUID, str | None]]:
    """The whole roster as (meter_id, partner_reference) pairs, for comparisons."""
    page = await roster(session, group_id, day, after=None, limit=10_000_000)
    return [
        (uuid.UUID(item["meter_id"]), item["partner_reference"])
        for item in json.loads(page.items_json)
    ]


def in_group_on_day(group_id: uuid.UUID, day: date) -> TextClause:
    """A condition on the `meters` row of an enclosing query: the meter is in the group on
    `day`, by the roster's rules (archived or not)."""
    condition = f"""meters.meter_id IN (
        SELECT c.meter_id FROM group_memberships c
        WHERE c.market_group_id = :in_group_id AND {_decides("CAST(:in_group_day AS date)")}
    )"""
    return text(condition).bindparams(in_group_id=group_id, in_group_day=day)


async def counts(
    session: AsyncSession, day: date | None
) -> list[tuple[uuid.UUID, str | None, str | None, date, int, str | None]]:
    result = await session.execute(_COUNTS, {"day": day})
    return [
        (row.market_group_id, row.name, row.time_zone, row.day, row.meter_count,
         row.transmission_region)
        for row in result
    ]  # fmt: skip


async def group_zone(session: AsyncSession, group_id: uuid.UUID) -> str | bool | None:
    """The group's time zone (None if unknown), or False when there is no such group."""
    found = await group_name_and_zone(session, group_id)
    return False if found is None else found[1]


async def group_name_and_zone(
    session: AsyncSession, group_id: uuid.UUID
) -> tuple[str | None, str | None] | None:
    """The group's name and time zone (each None if unknown); None: no such group."""
    row = (
        await session.execute(
            text("SELECT name, time_zone FROM market_groups WHERE market_group_id = :id"),
            {"id": group_id},
        )
    ).first()
    return None if row is None else (row.name, row.time_zone)


_DAY_SPAN = text(
    """
    SELECT min(first_day) AS first_day, max(last_day) AS last_day
    FROM group_memberships WHERE market_group_id = :group_id
    """
)


async def day_span(session: AsyncSession, group_id: uuid.UUID) -> tuple[date, date] | None:
    """The first and last trade dates any of the group's memberships covers, if any."""
    row = (await session.execute(_DAY_SPAN, {"group_id": group_id})).one()
    return None if row.first_day is None else (row.first_day, row.last_day)


_KNOWN_REGION = text(
    """
    SELECT transmission_region FROM meters
    WHERE meter_id = ANY(:meter_ids) AND transmission_region IS NOT NULL
    LIMIT 1
    """
).bindparams(bindparam("meter_ids", type_=ARRAY(UUID(as_uuid=True))))


# A group lives in one market: a sample of its members says which as well as all of them
# (probing 100k unknown ids cost ~100 ms of a group.updated).
REGION_SAMPLE = 1000


async def a_member_region(session: AsyncSession, meter_ids: list[uuid.UUID]) -> str | None:
    """The region of one already known meter among the first `REGION_SAMPLE` of
    `meter_ids`, if any."""
    if not meter_ids:
        return None
    found = await session.scalar(_KNOWN_REGION, {"meter_ids": meter_ids[:REGION_SAMPLE]})
    return str(found) if found is not None else None


async def named(session: AsyncSession, name: str) -> list[tuple[uuid.UUID, str]]:
    """Groups whose name is `name` (case-insensitive), for look-ups by people."""
    result = await session.execute(
        text(
            "SELECT market_group_id, name FROM market_groups "
            "WHERE lower(name) = lower(:name) ORDER BY market_group_id"
        ),
        {"name": name},
    )
    return [(row.market_group_id, row.name) for row in result]


async def some_names(session: AsyncSession, limit: int = 10) -> list[str]:
    result = await session.scalars(
        text("SELECT name FROM market_groups WHERE name IS NOT NULL ORDER BY name LIMIT :n"),
        {"n": limit},
    )
    return list(result)
