"""Read side for meters: one meter, its enrollment view and its participation."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.groups import repository as groups
from app.groups.trade_dates import (
    check_trade_date,
    current_trade_date,
    default_trade_dates,
    trade_date_range,
    zone_for,
)
from app.meters import repository
from app.meters.schemas import EnrollmentView, MeterOut, ParticipationOut
from app.meters.views import enrollment_view, group_on, meter_out
from app.models import Meter
from app.problems import Problem


async def _meter(session: AsyncSession, meter_id: uuid.UUID) -> Meter:
    meter = await repository.get(session, meter_id)
    if meter is None:
        raise Problem(404, "no meter with this id")
    return meter


async def get_meter(session: AsyncSession, settings: Settings, meter_id: uuid.UUID) -> MeterOut:
    meter = await _meter(session, meter_id)
    tz = zone_for(meter.transmission_region, settings.market_timezones)
    windows = (await groups.windows_for(session, [meter_id]))[meter_id]
    now = datetime.now(UTC)
    return meter_out(meter, group_on(current_trade_date(tz, now), tz, windows), now)


async def get_enrollment(session: AsyncSession, meter_id: uuid.UUID) -> EnrollmentView:
    return enrollment_view(await _meter(session, meter_id), datetime.now(UTC))


async def get_participation(
    session: AsyncSession,
    settings: Settings,
    meter_id: uuid.UUID,
    first: date | None,
    last: date | None,
) -> ParticipationOut:
    meter = await _meter(session, meter_id)
    tz = zone_for(meter.transmission_region, settings.market_timezones)
    if first is None and last is None:
        days = default_trade_dates(tz)
    else:
        start = first or current_trade_date(tz)
        try:
            days = trade_date_range(check_trade_date(start), check_trade_date(last or start))
        except ValueError as exc:
            raise Problem(422, str(exc)) from None
    windows = (await groups.windows_for(session, [meter_id]))[meter_id]
    return ParticipationOut(
        meter_id=meter_id,
        transmission_region=meter.transmission_region,
        time_zone=tz.key,
        participation=[group_on(day, tz, windows) for day in days],
    )
