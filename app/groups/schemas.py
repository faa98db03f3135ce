"""Response models for market groups."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from app.groups.trade_dates import MembershipWindow, trade_date_start, window_for
from app.openapi import NULL


class RosterMember(BaseModel):
    meter_id: uuid.UUID
    partner_reference: str | None


class RosterOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "market_group_id": "406720c2-0175-4137-9ff1-1641702292d4",
                    "market_group_name": "PGSB_1_PDRP68",
                    "trade_date": "2025-08-14",
                    "items": [
                        {
                            "meter_id": "5b6c1f0e-8d2a-4b7e-9a51-3c9e2d7f4a10",
                            "partner_reference": "acme-site-0042",
                        },
                        {
                            "meter_id": "5b6c2a41-03d9-4f2c-8e77-0b4d1e9c6f25",
                            "partner_reference": "acme-site-0043",
                        },
                    ],
                    "next_cursor": NULL,
                }
            ]
        }
    )

    market_group_id: uuid.UUID
    market_group_name: str | None = Field(description="The group's name as Leap gave it")
    trade_date: date
    items: list[RosterMember]
    next_cursor: str | None = Field(
        description="Pass back as `cursor` for the next page; null on the last page"
    )


class GroupCount(BaseModel):
    market_group_id: uuid.UUID
    market_group_name: str | None
    time_zone: str | None = Field(description="The market zone the group's trade dates use")
    transmission_region: str | None = Field(
        description="The members' transmission region (null if they are in several or "
        "none is known)"
    )
    trade_date: date = Field(description="The trade date counted (today in `time_zone` by default)")
    meter_count: int


class GroupsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "trade_date": "2025-08-14",
                    "items": [
                        {
                            "market_group_id": "406720c2-0175-4137-9ff1-1641702292d4",
                            "market_group_name": "PGSB_1_PDRP68",
                            "time_zone": "America/Los_Angeles",
                            "transmission_region": "CAISO",
                            "trade_date": "2025-08-14",
                            "meter_count": 18204,
                        },
                        {
                            "market_group_id": "9e1d3b52-6a0c-4f8e-b2d7-51c4a8f0e633",
                            "market_group_name": "SCEW_2_PDRP12",
                            "time_zone": "America/Los_Angeles",
                            "transmission_region": "CAISO",
                            "trade_date": "2025-08-14",
                            "meter_count": 7311,
                        },
                    ],
                }
            ]
        }
    )

    trade_date: date | None = Field(
        description="The trade date asked for; null when each group was counted on today "
        "in its own market zone"
    )
    items: list[GroupCount]


class GroupOnDate(BaseModel):
    trade_date: date
    trade_date_start: datetime
    market_group_id: uuid.UUID | None
    market_group_name: str | None

    @classmethod
    def of(cls, day: date, tz: ZoneInfo, windows: Iterable[MembershipWindow]) -> GroupOnDate:
        """The group a meter with these membership windows is in on trade date `day`."""
        chosen = window_for(windows, day)
        return cls(
            trade_date=day,
            trade_date_start=trade_date_start(day, tz),
            market_group_id=chosen.market_group_id if chosen else None,
            market_group_name=chosen.market_group_name if chosen else None,
        )
