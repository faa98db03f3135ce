"""POST /webhooks/leap/dispatch: Leap's dispatch notifications.

Same secret header, limits and answer table as the event receiver, whose checks and
answers are reused as they are (app/webhooks/receiver.py). A dispatch body carries no
event id, so its id in the event log is the UUID made of the first 16 bytes of its
SHA-256: the same body again is a duplicate (200). The body is stored and its timeslots
applied in one transaction before the 2xx; an apply failure still stores the body
(failed, retried by the worker, replayable).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError

from app.dispatch import service
from app.leap.dispatch import notification_type, parse_notification
from app.models import WebhookStatus
from app.webhooks.receiver import DeliveryEndpoint, Receiver, mount_delivery_route, operation
from app.webhooks.service import (
    ApplyOptions,
    Delivery,
    Inbox,
    Receipt,
    Rejected,
    deliver,
    error_text,
    field_errors,
)

PATH = "/webhooks/leap/dispatch"


def body_event_id(raw: bytes) -> uuid.UUID:
    """The event-log id of a dispatch body: its SHA-256's first 16 bytes."""
    return uuid.UUID(bytes=hashlib.sha256(raw).digest()[:16])


async def _store_and_apply(delivery: Delivery, body: Any, options: ApplyOptions) -> Receipt:
    try:
        note = parse_notification(delivery.event_type, body)
    except ValidationError as exc:
        errors = field_errors(exc)
        await delivery.store_only(WebhookStatus.DEAD, error=error_text(errors))
        raise Rejected(422, "body does not match Leap's dispatch schema", errors) from None
    applied: list[service.Applied] = []

    async def effects(session: Any) -> None:
        applied.append(
            await service.apply_notification(
                session,
                note,
                webhook_event_id=delivery.event_id,
                refresh=options.refresh,
                zones=options.zones,
            )
        )

    receipt = await delivery.store_and_apply(effects)
    if receipt.outcome == "accepted" and applied:
        service.report(applied[0])  # after the commit: the log line and the metrics
    return receipt


def _identify(body: Any, raw: bytes) -> tuple[uuid.UUID, str, Any]:
    """A dispatch body has no event id: its id is its content's (`body_event_id`)."""
    return body_event_id(raw), notification_type(body), body


async def receive(inbox: Inbox, raw: bytes, options: ApplyOptions) -> Receipt:
    return await deliver(
        inbox, raw, _identify, lambda delivery, body: _store_and_apply(delivery, body, options)
    )


async def _receive_dispatch(receiver: Receiver, raw: bytes) -> Receipt:
    return await receive(receiver.inbox, raw, receiver.options)


def mount(app: FastAPI) -> DeliveryEndpoint:
    return mount_delivery_route(
        app,
        DeliveryEndpoint(PATH, "dispatch", _receive_dispatch),
        operation(
            "Receive a Leap dispatch notification",
            "Leap's dispatch webhooks (meter and group) post `{meter_dispatches: [...]}` or "
            "`{group_dispatches: [...]}` here with the shared secret in the configured "
            "header. Each timeslot is upserted by `meter_event_id` / "
            "`market_group_event_id`; a group dispatch's meter list is checked against the "
            "local roster. The body is kept in the event log under the UUID of its "
            "SHA-256's first 16 bytes (type `dispatch.meter` or `dispatch.group`): 202 "
            "accepted, 200 for the same body again.",
            "receive_leap_dispatch",
        ),
    )
