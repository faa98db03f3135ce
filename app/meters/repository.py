"""SQL for the meters table.

A meter event's whole effect is one SQL statement (see `meter_effects`), written for a
set of events: the webhook receiver prefixes it with the inbox insert of the events that
arrived together, so storing and applying them is one atomic round trip; replays and
retries run the same effects for one event in their own transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app import jobs
from app.changes import repository as changes
from app.db import RawStatement
from app.deps import Reads, raw
from app.groups import copies
from app.groups import repository as groups
from app.meters.schemas import MeterListQuery
from app.models import JobKind, Meter
from app.partners import repository as partners


@dataclass(frozen=True, slots=True)
class MeterFacts:
    """What a webhook event says about a meter; None means "the event did not say"."""

    meter_id: uuid.UUID
    transmission_region: str | None = None
    partner_reference: str | None = None
    meter_type: str | None = None
    enrollment_status: str | None = None
    required_actions: dict[str, Any] | None = None
    # {"participation_preference", "start_time", "end_time"}; one kept per start_time
    participation: dict[str, Any] | None = None

    def params(self, webhook_event_id: uuid.UUID, *, refresh: bool) -> dict[str, Any]:
        return {
            "event_id": webhook_event_id,
            "meter_id": self.meter_id,
            "partner_reference": self.partner_reference,
            "transmission_region": self.transmission_region,
            "meter_type": self.meter_type,
            "enrollment_status": self.enrollment_status,
            "required_actions": _json(self.required_actions),
            "participation": _json(self.participation),
            "refresh": refresh,
            "refresh_kind": JobKind.REFRESH_METER,
        }


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def meter_effects(args: str) -> str:
    """The CTEs that apply meter events: `args` is a SELECT of one row per event with
    (meter_id, event_id, reference, region, meter_type, status, actions jsonb, pref_window
    jsonb, refresh, refresh_kind, go); the rows with `go` are applied, and those must be
    of distinct meters (an upsert changes a row at most once per statement).

    - the partner's record exists for the reference the event carries;
    - the meter is created if unknown (no event is lost to ordering), gets what the event
      carries and keeps what it does not; a participation window replaces the one with
      the same start;
    - the meter's membership rows get its reference and archived flag (their copies);
    - a change of reference is kept in both partner records' history. The old reference
      is copied into `previous_partner_reference` by the upsert itself, under the row lock,
      so concurrent events for one meter each see the reference they really replaced (a
      read from the statement's snapshot recorded one link several times);
    - with `refresh`, one refresh job per meter is queued (coalesced while queued).
    """
    return f"""
    args AS ({args}
    ), {
        partners.ensure_partners_cte(
            "partner", "SELECT reference FROM args WHERE go AND reference IS NOT NULL"
        )
    }, meter AS (
        INSERT INTO meters AS m (meter_id, partner_reference, transmission_region, meter_type,
                                 enrollment_status, required_actions, participation_preferences)
        SELECT meter_id, reference, region, meter_type, status,
               COALESCE(actions, '{{}}'::jsonb),
               CASE WHEN pref_window IS NULL THEN '[]'::jsonb
                    ELSE jsonb_build_array(pref_window) END
        FROM args WHERE go
        ORDER BY meter_id  -- row locks in one order, whatever the batch: no deadlocks
        ON CONFLICT (meter_id) DO UPDATE SET
            previous_partner_reference = m.partner_reference,
            partner_reference = COALESCE(EXCLUDED.partner_reference, m.partner_reference),
            transmission_region = COALESCE(EXCLUDED.transmission_region, m.transmission_region),
            meter_type = COALESCE(EXCLUDED.meter_type, m.meter_type),
            enrollment_status = COALESCE(EXCLUDED.enrollment_status, m.enrollment_status),
            -- required-actions events carry the partner side only: Leap's side is kept.
            -- The proposed row holds '{{}}' / '[]' when the event carried no actions /
            -- no participation window.
            required_actions = CASE WHEN EXCLUDED.required_actions = '{{}}'::jsonb
                THEN m.required_actions
                ELSE COALESCE(m.required_actions || EXCLUDED.required_actions,
                              m.required_actions) END,
            participation_preferences = CASE
                WHEN EXCLUDED.participation_preferences = '[]'::jsonb
                THEN m.participation_preferences
                ELSE (SELECT jsonb_agg(merged.p ORDER BY merged.p->>'start_time') FROM (
                        SELECT p FROM jsonb_array_elements(m.participation_preferences) AS p
                        WHERE p->>'start_time' IS DISTINCT FROM
                              EXCLUDED.participation_preferences->0->>'start_time'
                        UNION ALL SELECT EXCLUDED.participation_preferences->0
                    ) AS merged(p)) END,
            is_archived = false,
            archived_at = NULL,
            last_seen_at = now(),
            updated_at = now()
        RETURNING m.meter_id, m.partner_reference AS now_ref,
                  m.previous_partner_reference AS was_ref, (m.xmax = 0) AS created
    ), {partners.link_history_ctes("meter", event_id=_EVENT_OF_MOVE.format("a.event_id"))},
    {copies.copy_to_memberships_cte("copies", "SELECT meter_id, now_ref, false FROM meter")},
    {jobs.enqueue_cte("refresh", "args WHERE refresh")},
    {changes.meter_changes_cte("feed", "meter", _METER_EVENT_CHANGE, _METER_EVENT_SUMMARY)}"""


# What the applied event of a written meter `mv` says (its one `go` row of `args`).
_EVENT_OF_MOVE = "(SELECT {} FROM args a WHERE a.go AND a.meter_id = mv.meter_id)"

# A new meter is "upserted"; an event about its enrollment, participation or actions is
# "enrollment.changed"; other events (a meter.created again) "upserted".
_CARRIES_ENROLLMENT = "a.status IS NOT NULL OR a.actions IS NOT NULL OR a.pref_window IS NOT NULL"
_METER_EVENT_CHANGE = f"""CASE WHEN mv.created THEN '{changes.ChangeType.METER_UPSERTED}'
    WHEN {_EVENT_OF_MOVE.format(_CARRIES_ENROLLMENT)}
    THEN '{changes.ChangeType.ENROLLMENT_CHANGED}'
    ELSE '{changes.ChangeType.METER_UPSERTED}' END"""
_METER_EVENT_SUMMARY = _EVENT_OF_MOVE.format(
    "jsonb_strip_nulls(jsonb_build_object('enrollment_status', a.status))"
)

# One event's effects (replays and retries, inside the caller's transaction).
_ONE_EVENT = """
    SELECT CAST(:meter_id AS uuid) AS meter_id,
           CAST(:event_id AS uuid) AS event_id,
           CAST(:partner_reference AS text) AS reference,
           CAST(:transmission_region AS text) AS region,
           CAST(:meter_type AS text) AS meter_type,
           CAST(:enrollment_status AS text) AS status,
           CAST(:required_actions AS jsonb) AS actions,
           CAST(:participation AS jsonb) AS pref_window,
           CAST(:refresh AS boolean) AS refresh,
           CAST(:refresh_kind AS text) AS refresh_kind,
           TRUE AS go"""
_APPLY = text(f"WITH {meter_effects(_ONE_EVENT)} SELECT 1")


async def apply_meter_facts(
    conn: AsyncSession | AsyncConnection,
    facts: MeterFacts,
    webhook_event_id: uuid.UUID,
    *,
    refresh: bool,
) -> None:
    await conn.execute(_APPLY, facts.params(webhook_event_id, refresh=refresh))


# One meter and its membership windows in one statement on the raw pool (no
# transaction: one statement is its own snapshot). JSONB columns are read as text: the
# raw pool has no JSON codec, the CLI's session connection (`reads_in`) has one.
_RECORD_COLUMNS = tuple(column.name for column in Meter.__table__.columns)
_JSON_COLUMNS = frozenset(
    column.name for column in Meter.__table__.columns if isinstance(column.type, JSONB)
)
_RECORD_SELECT = ", ".join(
    f"m.{name}::text AS {name}" if name in _JSON_COLUMNS else f"m.{name}"
    for name in _RECORD_COLUMNS
)
_RECORD = raw(
    text(
        f"""
        SELECT {_RECORD_SELECT}, {groups.windows_array("m.meter_id")} AS windows
        FROM meters m WHERE m.meter_id = :meter_id
        """
    )
)


async def record(reads: Reads, meter_id: uuid.UUID) -> tuple[Meter, Sequence[Any] | None] | None:
    """The meter (a detached row object) and its windows' records, or None."""
    row = await reads.row(_RECORD, {"meter_id": meter_id})
    if row is None:
        return None
    values = {
        name: json.loads(row[name])
        if name in _JSON_COLUMNS and row[name] is not None
        else row[name]
        for name in _RECORD_COLUMNS
    }
    return Meter(**values), row["windows"]


_SUMMARY = (
    "meter_id, partner_reference, transmission_region, meter_type, utility_name, load_zone,"
    " enrollment_status, is_archived, updated_at"
)


# The list's statement for each combination of filters given, compiled once (at most a
# few hundred: which of the filters are given, and is_archived true or false).
_PAGES: dict[str, RawStatement] = {}
_EQUAL_FILTERS = (
    "partner_reference",
    "transmission_region",
    "utility_name",
    "load_zone",
    "enrollment_status",
)


async def list_page(
    reads: Reads,
    query: MeterListQuery,
    *,
    after: uuid.UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` meters matching every filter given, with meter_id above `after`, in
    meter_id order (the keyset the cursor carries; see migration 0003 for the indexes).

    One statement on the raw pool: the list is a hot read."""
    clauses: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for column in _EQUAL_FILTERS:
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    if query.is_archived is not None:
        # Not a bind parameter, so the partial index on archived meters can serve it.
        clauses.append("is_archived" if query.is_archived else "NOT is_archived")
    if query.updated_since is not None:
        clauses.append("updated_at >= :updated_since")
        params["updated_since"] = query.updated_since
    if query.market_group_id is not None and query.trade_date is not None:
        in_group = groups.in_group_on_day(query.market_group_id, query.trade_date)
        clauses.append(in_group.text)
        params.update(in_group.compile().params)
    if after is not None:
        clauses.append("meter_id > :after")
        params["after"] = after
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {_SUMMARY} FROM meters {where} ORDER BY meter_id LIMIT :limit"
    statement = _PAGES.get(sql)
    if statement is None:
        statement = _PAGES[sql] = RawStatement.compile(text(sql))
    return await reads.rows(statement, params)


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
    "connection_references",
    "transmission_region",
    "meter_type",
    "utility_name",
    "load_zone",
    "leap_meter",
    "is_archived",
)

# Leap's records, a page at a time. A changed reference is recorded on both partner
# records, by the same rule as for webhook events (partners.link_history_ctes). A Connect
# refId (connection_references) gets its record too: it lists the meters it authorized.
_STORE_METERS = text(
    f"""
    WITH incoming AS (
        SELECT * FROM jsonb_to_recordset(CAST(:records AS jsonb)) AS r(
            meter_id uuid, partner_reference text, connection_references text[],
            transmission_region text, meter_type text, utility_name text, load_zone text,
            is_archived boolean, leap_updated_at timestamptz, leap_meter jsonb)
    ), before AS (
        -- the stored rows as they were (a CTE reads the snapshot before this statement's
        -- writes), to count what the run changed
        SELECT meter_id, leap_updated_at AS was_version, is_archived AS was_archived
        FROM meters WHERE meter_id IN (SELECT meter_id FROM incoming)
    ), {
        partners.ensure_partners_cte(
            "partner",
            "SELECT partner_reference FROM incoming WHERE partner_reference IS NOT NULL "
            "UNION SELECT unnest(connection_references) FROM incoming",
        )
    }, stored AS (
        INSERT INTO meters AS m (meter_id, partner_reference, connection_references,
                                 transmission_region, meter_type, utility_name, load_zone,
                                 is_archived, archived_at, leap_updated_at, leap_meter,
                                 seen_run_id)
        SELECT meter_id, partner_reference, connection_references, transmission_region,
               meter_type, utility_name, load_zone, is_archived,
               CASE WHEN is_archived THEN now() END,
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
                  m.previous_partner_reference AS was_ref,
                  m.leap_updated_at AS version, m.is_archived AS archived
    ), {partners.link_history_ctes("stored")},
    {copies.copy_to_memberships_cte("copies", "SELECT meter_id, now_ref, archived FROM stored")},
    -- The feed hears of a record only when it changed something: new, a newer version,
    -- or a moved reference (a full run stores every meter again).
    changed AS (
        SELECT s.meter_id, s.now_ref, s.was_ref FROM stored s LEFT JOIN before b USING (meter_id)
        WHERE b.meter_id IS NULL OR s.version IS DISTINCT FROM b.was_version
           OR s.was_ref IS DISTINCT FROM s.now_ref
    ), {changes.meter_changes_cte("feed", "changed", f"'{changes.ChangeType.METER_UPSERTED}'")}
    SELECT count(*) AS stored,
           count(*) FILTER (WHERE b.meter_id IS NULL) AS new,
           count(*) FILTER (WHERE b.meter_id IS NOT NULL
                            AND s.version IS DISTINCT FROM b.was_version) AS updated,
           count(*) FILTER (WHERE s.archived AND NOT b.was_archived) AS archived
    FROM stored AS s LEFT JOIN before AS b USING (meter_id)
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


_ARCHIVED_COPIES = "SELECT meter_id, partner_reference, true FROM archived"
_ARCHIVE_UNSEEN = text(
    f"""
    WITH archived AS (
        UPDATE meters SET is_archived = true, archived_at = now(), updated_at = now()
        WHERE NOT is_archived AND seen_run_id IS DISTINCT FROM :run_id
          AND first_seen_at < :started
        RETURNING meter_id, partner_reference
    ), {copies.copy_to_memberships_cte("copies", _ARCHIVED_COPIES)},
    {changes.archived_cte("feed", "archived")}
    SELECT count(*) FROM archived
    """
)


class StoredMeters(NamedTuple):
    """One page of Leap's meter records stored: how many, and what changed."""

    stored: int
    new: int
    updated: int
    archived: int


async def store_leap_meters(
    session: AsyncSession, records: list[dict[str, Any]], run_id: int | None
) -> StoredMeters:
    """Upsert meter records from Leap's API (newer `leap_updated_at` wins)."""
    result = await session.execute(
        _STORE_METERS, {"records": json.dumps(records), "run_id": run_id}
    )
    row = result.one()
    return StoredMeters(int(row.stored), int(row.new), int(row.updated), int(row.archived))


async def store_leap_enrollments(
    session: AsyncSession, records: list[dict[str, Any]]
) -> dict[uuid.UUID, datetime | None]:
    """Upsert enrollment records (newer wins); each meter's stored version afterwards."""
    result = await session.execute(_STORE_ENROLLMENTS, {"records": json.dumps(records)})
    return {row.meter_id: row.version for row in result}


async def archive_unseen(session: AsyncSession, run_id: int, started: datetime) -> int:
    """A full run's end: meters Leap no longer returned are archived (never deleted)."""
    result = await session.execute(_ARCHIVE_UNSEEN, {"run_id": run_id, "started": started})
    return int(result.scalar_one())
