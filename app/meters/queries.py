"""Read side for meters: one meter, its enrollment view and its participation."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import date

from app.config import Settings
from app.deps import Reads
from app.groups.schemas import GroupOnDate
from app.groups.trade_dates import (
    MembershipWindow,
    check_trade_date,
    current_trade_date,
    default_trade_dates,
    trade_date_range,
    windows_by_meter,
    zone_of,
)
from app.markets import zone_for
from app.meters import repository
from app.meters.presenters import enrollment_view, meter_out
from app.meters.schemas import (
    EnrollmentView,
    MeterListQuery,
    MeterOut,
    MeterPage,
    MeterSummary,
    ParticipationOut,
)
from app.models import Meter
from app.problems import Problem


async def _meter(reads: Reads, meter_id: uuid.UUID) -> tuple[Meter, list[MembershipWindow]]:
    found = await repository.record(reads, meter_id)
    if found is None:
        raise Problem(404, "no meter with this id")
    meter, windows = found
    return meter, windows_by_meter(windows).get(meter_id, [])


async def get_meter(reads: Reads, settings: Settings, meter_id: uuid.UUID) -> MeterOut:
    meter, windows = await _meter(reads, meter_id)
    tz = zone_of(meter.transmission_region, windows, settings.market_timezones)
    return meter_out(meter, GroupOnDate.of(current_trade_date(tz), tz, windows), tz)


async def get_enrollment(reads: Reads, settings: Settings, meter_id: uuid.UUID) -> EnrollmentView:
    meter, _ = await _meter(reads, meter_id)
    tz = zone_for(meter.transmission_region, settings.market_timezones)
    return enrollment_view(meter, current_trade_date(tz), tz)


async def get_participation(
    reads: Reads,
    settings: Settings,
    meter_id: uuid.UUID,
    first: date | None,
    last: date | None,
) -> ParticipationOut:
    meter, windows = await _meter(reads, meter_id)
    tz = zone_of(meter.transmission_region, windows, settings.market_timezones)
    if first is None and last is None:
        days = default_trade_dates(tz)
    else:
        start = first or current_trade_date(tz)
        try:
            days = trade_date_range(check_trade_date(start), check_trade_date(last or start))
        except ValueError as exc:
            raise Problem(422, str(exc)) from None
    return ParticipationOut(
        meter_id=meter_id,
        transmission_region=meter.transmission_region,
        time_zone=tz.key,
        participation=[GroupOnDate.of(day, tz, windows) for day in days],
    )


# A list cursor is the last meter_id of the page (after a version byte), base64url. The
# list is in meter_id order: ids never change, so a walk sees every meter that matches
# throughout exactly once, however rows change between pages. Ordering by updated_at
# would move a meter updated mid-walk behind the cursor and show it twice.
_CURSOR_V1 = b"\x01"


def encode_cursor(meter_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(_CURSOR_V1 + meter_id.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 17 or raw[:1] != _CURSOR_V1:
        raise Problem(422, "cursor is not a next_cursor this API gave out")
    return uuid.UUID(bytes=raw[1:])


async def list_meters(reads: Reads, query: MeterListQuery) -> MeterPage:
    after = decode_cursor(query.cursor) if query.cursor is not None else None
    # One row more than asked for tells whether another page follows.
    rows = await repository.list_page(reads, query, after=after, limit=query.limit + 1)
    items = [MeterSummary.model_validate(dict(row.items())) for row in rows[: query.limit]]
    more = len(rows) > query.limit
    return MeterPage(items=items, next_cursor=encode_cursor(items[-1].meter_id) if more else None)
