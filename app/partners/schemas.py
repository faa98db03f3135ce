"""Response models for partner records."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.meters.schemas import GroupOnDate


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
    transmission_region: str | None
    enrollment_status: str | None
    is_archived: bool
    group_today: GroupOnDate


class PartnerOut(BaseModel):
    partner_reference: str
    connect_session_status: str | None
    connect_session_updated_at: datetime | None
    authorization_status: str | None
    authorization_utility: str | None
    authorization_updated_at: datetime | None
    meters: list[PartnerMeter]
    history: list[PartnerHistoryItem]
    created_at: datetime
    updated_at: datetime
