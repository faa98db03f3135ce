"""SQL for partner records: one row per partner_reference, plus its history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from app.clock import utc_now
from app.models import Meter, Partner, PartnerEvent


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


async def get(session: AsyncSession, partner_reference: str) -> Partner | None:
    return await session.get(Partner, partner_reference)


async def history(session: AsyncSession, partner_reference: str) -> Sequence[PartnerEvent]:
    result = await session.scalars(
        select(PartnerEvent)
        .where(PartnerEvent.partner_reference == partner_reference)
        .order_by(PartnerEvent.id)
    )
    return result.all()


async def meters(session: AsyncSession, partner_reference: str) -> Sequence[Meter]:
    """Meters attached to the reference: its own, and those its Connect authorization
    produced (Leap lists the refId in their `connection_references`)."""
    result = await session.scalars(
        select(Meter)
        # The record shows a few columns: Leap's whole records (JSONB) are not loaded.
        .options(
            load_only(
                Meter.meter_id,
                Meter.partner_reference,
                Meter.connection_references,
                Meter.transmission_region,
                Meter.enrollment_status,
                Meter.is_archived,
                raiseload=True,
            )
        )
        .where(
            or_(
                Meter.partner_reference == partner_reference,
                Meter.connection_references.contains([partner_reference]),
            )
        )
        .order_by(Meter.meter_id)
    )
    return result.all()
