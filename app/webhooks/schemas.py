"""The webhook envelope every delivery must carry, the receipt the receiver answers, and
the event log's response shapes.

The event payloads inside the envelope are Leap's contract: `app.leap.events`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.openapi import NULL

# Newest events read to count events per minute (see repository.received_per_minute).
RATE_SCAN = 200_000


_EVENT_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every delivery must carry before anything can be stored under its id (checked
    by `read_envelope`; a plain dataclass, as the hot path reads it once per delivery)."""

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "webhook_event_id": "0f8e6d4c-2b1a-4c3d-9e8f-7a6b5c4d3e2f",
                    "event_type": "meter.enrollment.global-status.updated",
                    "status": "dead",
                    "error": "payload.global_enrollment_status: Input should be 'ACTIVE', ...",
                    "attempts": 1,
                    "meter_id": "5b6c1f0e-8d2a-4b7e-9a51-3c9e2d7f4a10",
                    "partner_reference": "acme-site-0042",
                    "duplicate_deliveries": 0,
                    "conflicting_deliveries": 0,
                    "received_at": "2025-08-14T09:12:03.512Z",
                    "applied_at": NULL,
                    "body_size": 212,
                    "body_json": {
                        "webhook_event_id": "0f8e6d4c-2b1a-4c3d-9e8f-7a6b5c4d3e2f",
                        "payload": {
                            "webhook_event_type": "meter.enrollment.global-status.updated",
                            "meter_id": "5b6c1f0e-8d2a-4b7e-9a51-3c9e2d7f4a10",
                            "global_enrollment_status": "ENROLLED",
                        },
                    },
                    "body": '{"webhook_event_id": "0f8e6d4c-...", "payload": {...}}',
                }
            ]
        }
    )

    body_size: int
    body_json: Any = Field(
        None,
        description="The body parsed as JSON; null when it is not JSON or was pruned "
        "(then read `body`)",
    )
    # The body as delivered, decoded as UTF-8 with bad bytes replaced; null once pruned.
    body: str | None = Field(
        description="The body as delivered (UTF-8, bad bytes replaced); null once pruned"
    )

    @field_validator("body", mode="before")
    @classmethod
    def _decode(cls, value: object) -> object:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class EventPage(BaseModel):
    items: list[EventSummary]
    next_cursor: str | None


class MinuteCount(BaseModel):
    minute: datetime
    received: int


class EventRate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "since": "2025-08-14T09:00:00Z",
                    "until": "2025-08-14T12:00:00Z",
                    "minutes": [
                        {"minute": "2025-08-14T09:00:00Z", "received": 12},
                        {"minute": "2025-08-14T09:01:00Z", "received": 0},
                    ],
                    "total": 12,
                    "capped": False,
                }
            ]
        }
    )

    since: datetime = Field(description="Start of the first minute counted (UTC)")
    until: datetime = Field(description="End of the last minute counted (UTC)")
    minutes: list[MinuteCount] = Field(description="Every minute of the window, oldest first")
    total: int
    capped: bool = Field(
        description="True when more events arrived in the window than one scan reads "
        f"({RATE_SCAN:,}): the oldest minutes are then undercounted"
    )
