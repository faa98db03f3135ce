"""What connect-session events do to a partner's record."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.leap.events import AuthorizationUpdated, ConnectSessionUpdated
from app.partners import repository


async def apply_connect_event(
    session: AsyncSession,
    event: ConnectSessionUpdated | AuthorizationUpdated,
    webhook_event_id: uuid.UUID,
) -> None:
    ref = event.partner_reference
    await repository.ensure(session, ref)
    if isinstance(event, ConnectSessionUpdated):
        await repository.set_connect_session(session, ref, event.status)
        await repository.add_history(
            session, ref, "connect_session", status=event.status, webhook_event_id=webhook_event_id
        )
    else:
        await repository.set_authorization(session, ref, event.status, event.utility_name)
        await repository.add_history(
            session,
            ref,
            "authorization",
            status=event.status,
            utility_name=event.utility_name,
            webhook_event_id=webhook_event_id,
        )
