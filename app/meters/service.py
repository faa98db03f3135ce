"""What webhook events do to meters. Functions flush through the caller's session only."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.meters import repository
from app.meters.repository import MeterFacts
from app.partners import repository as partners
from app.sync import jobs
from app.webhooks.schemas import (
    GlobalStatusUpdated,
    MeterCreated,
    ParticipationStatusUpdated,
    RequiredActionsUpdated,
)

MeterEvent = (
    MeterCreated | GlobalStatusUpdated | ParticipationStatusUpdated | RequiredActionsUpdated
)


def facts_from(event: MeterEvent) -> MeterFacts:
    status = getattr(event, "global_enrollment_status", None)
    actions = (
        event.required_actions.model_dump(mode="json")
        if isinstance(event, RequiredActionsUpdated)
        else None
    )
    return MeterFacts(
        meter_id=event.meter_id,
        transmission_region=event.transmission_region.value,
        partner_reference=event.partner_reference,
        meter_type=event.meter_type.value if event.meter_type else None,
        enrollment_status=status.value if status else None,
        required_actions=actions,
    )


async def apply_event(
    session: AsyncSession, event: MeterEvent, webhook_event_id: uuid.UUID, *, refresh: bool
) -> None:
    """Upsert the meter from the event, keep the partner link history, queue a refresh."""
    facts = facts_from(event)
    result = await repository.upsert_from_event(session, facts)
    new_ref = facts.partner_reference
    if new_ref is not None and new_ref != result.prior_reference:
        if result.prior_reference is not None:
            await partners.add_history(
                session,
                result.prior_reference,
                "meter_unlinked",
                meter_id=event.meter_id,
                webhook_event_id=webhook_event_id,
            )
        await partners.add_history(
            session,
            new_ref,
            "meter_linked",
            meter_id=event.meter_id,
            webhook_event_id=webhook_event_id,
        )
    if isinstance(event, ParticipationStatusUpdated):
        await repository.merge_participation(
            session,
            event.meter_id,
            {
                "participation_preference": event.participation_preference.value,
                "start_time": _iso(event.start_time),
                "end_time": _iso(event.end_time) if event.end_time else None,
            },
        )
    if refresh:
        await jobs.enqueue(session, jobs.REFRESH_METER, event.meter_id)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
