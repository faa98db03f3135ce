"""What webhook events do to meters. Functions flush through the caller's session only."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.clock import iso_z
from app.leap.events import (
    GlobalStatusUpdated,
    MeterCreated,
    ParticipationStatusUpdated,
    RequiredActionsUpdated,
)
from app.meters import repository
from app.meters.repository import MeterFacts

MeterEvent = (
    MeterCreated | GlobalStatusUpdated | ParticipationStatusUpdated | RequiredActionsUpdated
)


def facts_from(event: MeterEvent) -> MeterFacts:
    status = getattr(event, "global_enrollment_status", None)
    actions = None
    participation = None
    if isinstance(event, RequiredActionsUpdated):
        # The event carries only the partner side: Leap's side (from the API) is kept.
        actions = {"partner": [a.model_dump(mode="json") for a in event.required_actions.partner]}
    if isinstance(event, ParticipationStatusUpdated):
        participation = {
            "participation_preference": event.participation_preference.value,
            "start_time": iso_z(event.start_time),
            "end_time": iso_z(event.end_time) if event.end_time else None,
        }
    return MeterFacts(
        meter_id=event.meter_id,
        transmission_region=event.transmission_region.value if event.transmission_region else None,
        partner_reference=event.partner_reference,
        meter_type=event.meter_type.value if event.meter_type else None,
        enrollment_status=status.value if status else None,
        required_actions=actions,
        participation=participation,
    )


async def apply_event(
    conn: AsyncSession | AsyncConnection,
    event: MeterEvent,
    webhook_event_id: uuid.UUID,
    *,
    refresh: bool,
) -> None:
    """Upsert the meter from the event, keep the partner link history, queue a refresh."""
    await repository.apply_meter_facts(conn, facts_from(event), webhook_event_id, refresh=refresh)
