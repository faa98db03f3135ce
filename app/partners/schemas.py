"""Response models for partner records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app import examples
from app.groups.schemas import GroupOnDate
from app.openapi import NULL


class PartnerHistoryItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    status: str | None
    utility_name: str | None
    meter_id: uuid.UUID | None
    webhook_event_id: uuid.UUID | None
    occurred_at: datetime


class PartnerMeter(BaseModel):
    meter_id: uuid.UUID
    linked_by: list[Literal["connection_reference", "partner_reference"]] = Field(
        description="How the meter is attached: its `partner_reference` is this one, and/or "
        "Leap lists this reference in its `connection_references` (the Connect "
        "authorization that produced it)"
    )
    transmission_region: str | None
    enrollment_status: str | None
    is_archived: bool
    group_today: GroupOnDate


class PartnerOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "partner_reference": "acme-site-0042",
                    "connect_session_status": "COMPLETED",
                    "connect_session_updated_at": "2025-06-03T17:20:02.118Z",
                    "authorization_status": "COMPLETED",
                    "authorization_utility": "PGE",
                    "authorization_updated_at": "2025-06-03T17:21:55.730Z",
                    "authorization_completed_at": "2025-06-03T17:21:55.730Z",
                    "meters": [
                        {
                            "meter_id": examples.METER_ID,
                            "linked_by": ["partner_reference"],
                            "transmission_region": "CAISO",
                            "enrollment_status": "ACTIVE",
                            "is_archived": False,
                            "group_today": examples.on_date("2025-08-14", "2025-08-14T07:00:00Z"),
                        }
                    ],
                    "history": [
                        {
                            "kind": "authorization",
                            "status": "COMPLETED",
                            "utility_name": "PGE",
                            "meter_id": NULL,
                            "webhook_event_id": "0c9a7d3e-51f4-4b8a-9d2e-7f6b1a3c8e40",
                            "occurred_at": "2025-06-03T17:21:55.902Z",
                        },
                        {
                            "kind": "meter_linked",
                            "status": NULL,
                            "utility_name": NULL,
                            "meter_id": examples.METER_ID,
                            "webhook_event_id": "3f2b8c61-9e07-4d5a-a1c4-2b7e9d0f5a18",
                            "occurred_at": "2025-06-03T17:22:41.512Z",
                        },
                    ],
                    "created_at": "2025-06-03T17:20:02.118Z",
                    "updated_at": "2025-06-03T17:21:55.902Z",
                }
            ]
        }
    )

    partner_reference: str
    connect_session_status: str | None
    connect_session_updated_at: datetime | None
    authorization_status: str | None
    authorization_utility: str | None
    authorization_updated_at: datetime | None
    authorization_completed_at: datetime | None = Field(
        description="When an authorization for this reference first COMPLETED"
    )
    meters: list[PartnerMeter]
    history: list[PartnerHistoryItem]
    created_at: datetime
    updated_at: datetime
