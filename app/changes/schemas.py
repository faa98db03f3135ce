"""Response models for the change feed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.openapi import NULL

_EXAMPLE: dict[str, Any] = {
    "cursor": "7421-1553",
    "type": "meter.linked",
    "at": "2025-08-14T16:02:11.204Z",
    "meter_id": "5b6c1f0e-8d2a-4b7e-9a51-3c9e2d7f4a10",
    "partner_reference": "acme-site-0042",
    "market_group_id": NULL,
    "dispatch_event_id": NULL,
    "summary": {"partner_reference_before": NULL},
}


class ChangeOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    cursor: str = Field(description="Where this change is in the feed; resume after it.")
    type: str
    at: datetime
    meter_id: uuid.UUID | None
    partner_reference: str | None
    market_group_id: uuid.UUID | None
    dispatch_event_id: uuid.UUID | None
    summary: dict[str, Any]


class ChangePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_EXAMPLE], "next_cursor": "7421-1553"}]}
    )

    items: list[ChangeOut]
    next_cursor: str = Field(
        description="Where to resume: the last item's cursor, or `after` on an empty page."
    )
