"""The webhook envelope every delivery must carry, the receipt the receiver answers, and
the event log's response shapes.

The event payloads inside the envelope are Leap's contract: `app.leap.events`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_EVENT_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class Envelope(_Model):
    """What every delivery must carry before anything can be stored under its id."""

    webhook_event_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]


def read_envelope(body: Any) -> Envelope:
    """Check the envelope; raise ValueError with a sender-safe message if it is unusable."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    raw_id = body.get("webhook_event_id")
    try:
        event_id = uuid.UUID(raw_id) if isinstance(raw_id, str) else None
    except ValueError:
        event_id = None
    if event_id is None:
        raise ValueError("webhook_event_id must be a UUID string")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise ValueError("payload must be a JSON object")
    event_type = payload.get("webhook_event_type")
    if (
        not isinstance(event_type, str)
        or not 0 < len(event_type) <= 128
        or not set(event_type) <= _EVENT_TYPE_CHARS
    ):
        raise ValueError("payload.webhook_event_type must be a short event type name")
    return Envelope(webhook_event_id=event_id, event_type=event_type, payload=payload)


class ReceiptOut(BaseModel):
    webhook_event_id: uuid.UUID
    status: Literal["accepted", "duplicate", "ignored", "failed"]


class EventSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    webhook_event_id: uuid.UUID
    event_type: str
    status: str
    error: str | None
    attempts: int
    meter_id: uuid.UUID | None
    partner_reference: str | None
    duplicate_deliveries: int
    conflicting_deliveries: int
    received_at: datetime
    applied_at: datetime | None


class EventDetail(EventSummary):
    body_size: int
    # The body as delivered, decoded as UTF-8 with bad bytes replaced; null once pruned.
    body: str | None

    @field_validator("body", mode="before")
    @classmethod
    def _decode(cls, value: object) -> object:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class EventPage(BaseModel):
    items: list[EventSummary]
    next_cursor: str | None
