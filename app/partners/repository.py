"""SQL for partner records: one row per partner_reference, plus its history."""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy import func, insert, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utc_now
from app.deps import Reads, raw
from app.groups.repository import windows_array
from app.models import Partner, PartnerEvent


def ensure_partners_cte(name: str, references: str) -> str:
    """A CTE that creates the partner record of each reference `references` (a SELECT of
    one text column) yields, for statements that write meters and partners at once."""
    return f"""{name} AS (
        INSERT INTO partners (partner_reference)
        {references}
        ON CONFLICT DO NOTHING
    )"""


def link_history_ctes(moves: str, event_id: str = "NULL") -> str:
    """CTEs `unlinked` and `linked`: the partner link-history rule, written once.

    `moves` is a row source with (meter_id, was_ref, now_ref): a meter whose reference
    changed is recorded as unlinked from the old record and linked to the new one. The
    old reference must come from the upsert itself (`previous_partner_reference`, under
    the row lock), so concurrent writes each see the reference they really replaced.
    """
    return f"""unlinked AS (
        INSERT INTO partner_events (partner_reference, kind, meter_id, webhook_event_id)
        SELECT mv.was_ref, 'meter_unlinked', mv.meter_id, {event_id} FROM {moves} mv
        WHERE mv.was_ref IS NOT NULL AND mv.was_ref IS DISTINCT FROM mv.now_ref
    ), linked AS (
        INSERT INTO partner_events (partner_reference, kind, meter_id, webhook_event_id)
        SELECT mv.now_ref, 'meter_linked', mv.meter_id, {event_id} FROM {moves} mv
        WHERE mv.now_ref IS NOT NULL AND mv.now_ref IS DISTINCT FROM mv.was_ref
    )"""


async def ensure(session: AsyncSession, partner_reference: str) -> None:
    await session.execute(
        pg_insert(Partner).values(partner_reference=partner_reference).on_conflict_do_nothing()
    )


async def add_history(
    session: AsyncSession,
    partner_reference: str,
    kind: str,
    *,
    status: str | None = None,
    utility_name: str | None = None,
    meter_id: uuid.UUID | None = None,
    webhook_event_id: uuid.UUID | None = None,
) -> None:
    await session.execute(
        insert(PartnerEvent).values(
            partner_reference=partner_reference,
            kind=kind,
            status=status,
            utility_name=utility_name,
            meter_id=meter_id,
            webhook_event_id=webhook_event_id,
        )
    )


async def set_connect_session(session: AsyncSession, partner_reference: str, status: str) -> None:
    now = utc_now()
    await session.execute(
        update(Partner)
        .where(Partner.partner_reference == partner_reference)
        .values(connect_session_status=status, connect_session_updated_at=now, updated_at=now)
    )


async def set_authorization(
    session: AsyncSession, partner_reference: str, status: str, utility_name: str
) -> None:
    """The latest authorization status; when one first COMPLETED is kept for good (connect
    events carry no time, so a late INITIATED must not hide a completed authorization)."""
    now = utc_now()
    completed = now if status == "COMPLETED" else None
    await session.execute(
        update(Partner)
        .where(Partner.partner_reference == partner_reference)
        .values(
            authorization_status=status,
            authorization_utility=utility_name,
            authorization_updated_at=now,
            authorization_completed_at=func.coalesce(Partner.authorization_completed_at, completed),
            updated_at=now,
        )
    )


# A partner record in one statement (one round trip, no transaction: one statement is its
# own snapshot). Each list is an array of anonymous records, which asyncpg decodes into
# tuples of typed values in the order written here (`PartnerRecord` reads them by position).
# The meters are those `meters()` selects; their membership windows come in the order
# that ranks them (groups.windows_array).
_RECORD = raw(
    text(
        f"""
        WITH attached AS (
            SELECT meter_id, partner_reference, connection_references, transmission_region,
                   enrollment_status, is_archived
            FROM meters
            WHERE partner_reference = :ref OR connection_references @> ARRAY[CAST(:ref AS text)]
        )
        SELECT p.partner_reference, p.connect_session_status, p.connect_session_updated_at,
               p.authorization_status, p.authorization_utility, p.authorization_updated_at,
               p.authorization_completed_at, p.created_at, p.updated_at,
               (SELECT array_agg(ROW(
                           a.meter_id,
                           coalesce(:ref = ANY(a.connection_references), false),
                           coalesce(a.partner_reference = :ref, false),
                           a.transmission_region, a.enrollment_status, a.is_archived)
                       ORDER BY a.meter_id)
                FROM attached a) AS meters,
               {windows_array("SELECT meter_id FROM attached")} AS windows,
               (SELECT array_agg(ROW(e.kind, e.status, e.utility_name, e.meter_id,
                                     e.webhook_event_id, e.occurred_at) ORDER BY e.id)
                FROM partner_events e WHERE e.partner_reference = :ref) AS history
        FROM partners p
        WHERE p.partner_reference = :ref
        """
    )
)


async def record(reads: Reads, partner_reference: str) -> asyncpg.Record | None:
    """The partner row with `meters`, `windows` and `history` (arrays, or None when empty)."""
    return await reads.row(_RECORD, {"ref": partner_reference})
