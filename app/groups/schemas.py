"""Response models for market groups."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel


class RosterMember(BaseModel):
    meter_id: uuid.UUID
    partner_reference: str | None


class RosterOut(BaseModel):
    market_group_id: uuid.UUID
    trade_date: date
    items: list[RosterMember]
    next_cursor: str | None
