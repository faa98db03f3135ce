"""Read side for partner records."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utc_now
from app.config import Settings
from app.groups import repository as groups
from app.groups.schemas import GroupOnDate
from app.groups.trade_dates import current_trade_date, zone_of
from app.partners import repository
from app.partners.schemas import PartnerHistoryItem, PartnerMeter, PartnerOut
from app.problems import Problem


async def get_partner(session: AsyncSession, settings: Settings, reference: str) -> PartnerOut:
    partner = await repository.get(session, reference)
    if partner is None:
        raise Problem(404, "no partner record for this partner_reference")
    meters = await repository.meters(session, reference)
    windows = await groups.windows_for(session, [m.meter_id for m in meters])
    now = utc_now()
    attached = []
    for meter in meters:
        tz = zone_of(meter.transmission_region, windows[meter.meter_id], settings.market_timezones)
        attached.append(
            PartnerMeter(
                meter_id=meter.meter_id,
                linked_by=[
                    how
                    for how, linked in (
                        ("connection_reference", reference in (meter.connection_references or [])),
                        ("partner_reference", meter.partner_reference == reference),
                    )
                    if linked
                ],
                transmission_region=meter.transmission_region,
                enrollment_status=meter.enrollment_status,
                is_archived=meter.is_archived,
                group_today=GroupOnDate.of(
                    current_trade_date(tz, now), tz, windows[meter.meter_id]
                ),
            )
        )
    history = await repository.history(session, reference)
    return PartnerOut(
        partner_reference=partner.partner_reference,
        connect_session_status=partner.connect_session_status,
        connect_session_updated_at=partner.connect_session_updated_at,
        authorization_status=partner.authorization_status,
        authorization_utility=partner.authorization_utility,
        authorization_updated_at=partner.authorization_updated_at,
        authorization_completed_at=partner.authorization_completed_at,
        meters=attached,
        history=[PartnerHistoryItem.model_validate(h) for h in history],
        created_at=partner.created_at,
        updated_at=partner.updated_at,
    )
