"""SQL for the meters table."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import GroupMembership, Meter


@dataclass(frozen=True, slots=True)
class MeterFacts:
    """What a webhook event says about a meter; None means "the event did not say"."""

    meter_id: uuid.UUID
    transmission_region: str
    partner_reference: str | None = None
    meter_type: str | None = None
    enrollment_status: str | None = None
    required_actions: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UpsertResult:
    inserted: bool
    prior_reference: str | None


# One statement for every meter event: creates the meter if it is unknown (no event is
# lost to ordering), fills what the event carries, and keeps what it does not. The
# partner's record is made in the same statement. `prior` reads the reference being
# replaced from the statement's snapshot (FOR UPDATE would see nothing there: a row this
# same statement updates is invisible to a locking read).
_UPSERT = text(
    """
    WITH partner AS (
        INSERT INTO partners (partner_reference)
        SELECT CAST(:partner_reference AS text) WHERE :partner_reference IS NOT NULL
        ON CONFLICT DO NOTHING
    ), prior AS (
        SELECT partner_reference FROM meters WHERE meter_id = :meter_id
    ), upsert AS (
        INSERT INTO meters AS m (meter_id, partner_reference, transmission_region, meter_type,
                                 enrollment_status, required_actions)
        VALUES (:meter_id, :partner_reference, :transmission_region, :meter_type,
                :enrollment_status, COALESCE(CAST(:required_actions AS jsonb), '{}'::jsonb))
        ON CONFLICT (meter_id) DO UPDATE SET
            partner_reference = COALESCE(EXCLUDED.partner_reference, m.partner_reference),
            transmission_region = EXCLUDED.transmission_region,
            meter_type = COALESCE(EXCLUDED.meter_type, m.meter_type),
            enrollment_status = COALESCE(EXCLUDED.enrollment_status, m.enrollment_status),
            required_actions = COALESCE(CAST(:required_actions AS jsonb), m.required_actions),
            is_archived = false,
            archived_at = NULL,
            last_seen_at = now(),
            updated_at = now()
        RETURNING (xmax = 0) AS inserted
    )
    SELECT (SELECT inserted FROM upsert) AS inserted,
           (SELECT partner_reference FROM prior) AS prior_reference
    """
)

# Participation windows are kept one per start_time, sorted; a window with the same
# start replaces the earlier one.
_MERGE_PARTICIPATION = text(
    """
    UPDATE meters SET participation_preferences = (
        SELECT COALESCE(jsonb_agg(p ORDER BY p->>'start_time'), '[]'::jsonb) FROM (
            SELECT p FROM jsonb_array_elements(participation_preferences) AS p
            WHERE p->>'start_time' IS DISTINCT FROM :start_time
            UNION ALL SELECT CAST(:window AS jsonb)
        ) AS merged
    ), updated_at = now()
    WHERE meter_id = :meter_id
    """
)


async def upsert_from_event(session: AsyncSession, facts: MeterFacts) -> UpsertResult:
    actions = None if facts.required_actions is None else json.dumps(facts.required_actions)
    row = (
        await session.execute(
            _UPSERT,
            {
                "meter_id": facts.meter_id,
                "partner_reference": facts.partner_reference,
                "transmission_region": facts.transmission_region,
                "meter_type": facts.meter_type,
                "enrollment_status": facts.enrollment_status,
                "required_actions": actions,
            },
        )
    ).one()
    return UpsertResult(inserted=bool(row.inserted), prior_reference=row.prior_reference)


async def merge_participation(
    session: AsyncSession, meter_id: uuid.UUID, window: dict[str, Any]
) -> None:
    await session.execute(
        _MERGE_PARTICIPATION,
        {"meter_id": meter_id, "start_time": window["start_time"], "window": json.dumps(window)},
    )


async def get(session: AsyncSession, meter_id: uuid.UUID) -> Meter | None:
    return await session.get(Meter, meter_id)


async def windows(session: AsyncSession, meter_ids: list[uuid.UUID]) -> list[GroupMembership]:
    result = await session.scalars(
        select(GroupMembership).where(GroupMembership.meter_id.in_(meter_ids))
    )
    return list(result.all())
