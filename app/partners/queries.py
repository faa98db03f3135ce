"""Read side for partner records: one statement, then the group of each meter today."""

from __future__ import annotations

from app.clock import utc_now
from app.config import Settings
from app.deps import Reads
from app.groups.schemas import GroupOnDate
from app.groups.trade_dates import current_trade_date, windows_by_meter, zone_of
from app.partners import repository
from app.partners.schemas import PartnerHistoryItem, PartnerMeter, PartnerOut
from app.problems import Problem


async def get_partner(reads: Reads, settings: Settings, reference: str) -> PartnerOut:
    partner = await repository.record(reads, reference)
    if partner is None:
        raise Problem(404, "no partner record for this partner_reference")
    windows = windows_by_meter(partner["windows"])
    now = utc_now()
    attached = []
    for meter_id, by_connection, by_reference, region, status, archived in partner["meters"] or ():
        own = windows.get(meter_id, [])
        tz = zone_of(region, own, settings.market_timezones)
        attached.append(
            PartnerMeter(
                meter_id=meter_id,
                linked_by=[
                    how
                    for how, linked in (
                        ("connection_reference", by_connection),
                        ("partner_reference", by_reference),
                    )
                    if linked
                ],
                transmission_region=region,
                enrollment_status=status,
                is_archived=archived,
                group_today=GroupOnDate.of(current_trade_date(tz, now), tz, own),
            )
        )
    return PartnerOut(
        partner_reference=partner["partner_reference"],
        connect_session_status=partner["connect_session_status"],
        connect_session_updated_at=partner["connect_session_updated_at"],
        authorization_status=partner["authorization_status"],
        authorization_utility=partner["authorization_utility"],
        authorization_updated_at=partner["authorization_updated_at"],
        authorization_completed_at=partner["authorization_completed_at"],
        meters=attached,
        history=[
            PartnerHistoryItem(
                kind=kind,
                status=status,
                utility_name=utility,
                meter_id=meter_id,
                webhook_event_id=event_id,
                occurred_at=occurred_at,
            )
            for kind, status, utility, meter_id, event_id, occurred_at in partner["history"] or ()
        ],
        created_at=partner["created_at"],
        updated_at=partner["updated_at"],
    )
