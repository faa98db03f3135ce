"""What a dispatch notification does: upsert its timeslots, check each group timeslot's
meter list against our roster of that group on its trade date, queue refreshes.

The caller owns the transaction; drift is reported (log line, metrics) by the caller
once the transaction committed, so a rolled-back apply reports nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import jobs, metrics
from app.changes import repository as changes
from app.dispatch import drift
from app.dispatch import repository as repo
from app.dispatch.repository import DispatchRow
from app.groups import repository as groups
from app.groups.trade_dates import trade_date_start
from app.leap.dispatch import (
    DISPATCH_EVENT_TYPES,
    DispatchNotification,
    DispatchTimeslot,
    GroupDispatchNotification,
    GroupDispatchTimeslot,
    MeterDispatchNotification,
    MeterDispatchTimeslot,
    WebhookMarketGroupDispatchEvent,
    parse_notification,
)
from app.markets import zone_for
from app.webhooks import parsing
from app.webhooks.service import ApplyOptions, Reapplier

log = logging.getLogger("meter_sync.dispatch")


@dataclass(frozen=True, slots=True)
class Drift:
    dispatch_event_id: uuid.UUID
    market_group_id: uuid.UUID
    trade_date: date
    leap_only: list[uuid.UUID]
    local_only: list[uuid.UUID]

    @property
    def size(self) -> int:
        return len(self.leap_only) + len(self.local_only)


@dataclass(slots=True)
class Applied:
    """What one notification did: timeslots written and drift found."""

    dispatch_ids: dict[uuid.UUID, int] = field(default_factory=dict)
    drifts: list[Drift] = field(default_factory=list)


def _row(
    slot: DispatchTimeslot,
    *,
    kind: str,
    event_id: uuid.UUID,
    test: bool,
    communication: bool,
    group_id: uuid.UUID | None,
    set_id: int,
    tz: ZoneInfo,
    source: str,
    webhook_event_id: uuid.UUID | None,
) -> DispatchRow:
    day = slot.start_time.astimezone(tz).date()
    return DispatchRow(
        kind=kind,
        dispatch_event_id=event_id,
        integration_test=test,
        market_group_id=group_id,
        meter_set_id=set_id,
        start_time=slot.start_time,
        end_time=slot.end_time,
        trade_date=day,
        trade_date_start=trade_date_start(day, tz),
        energy_kw=slot.energy_kw,
        nomination_kw=slot.nomination_kw,
        cancelled=slot.cancelled,
        programs=list(dict.fromkeys(slot.programs)),
        priority=slot.priority,
        is_voluntary=slot.is_voluntary,
        performance_compensation_cap=slot.performance_compensation_cap,
        dispatch_event_types=list(dict.fromkeys(slot.dispatch_event_types)),
        communication_test=communication or slot.is_communication,
        source=source,
        webhook_event_id=webhook_event_id,
    )


async def _group_zone(
    session: AsyncSession, group: WebhookMarketGroupDispatchEvent, zones: Mapping[str, str]
) -> ZoneInfo:
    """The group's market zone: the one its group.updated window implies (stored with the
    group, app/groups/service.py), else a known member's or listed meter's region."""
    known = await groups.group_zone(session, group.market_group_id)
    if isinstance(known, str):
        return ZoneInfo(known)
    region = await repo.group_region(session, group.market_group_id, group.meter_ids)
    return zone_for(region, zones)


async def _apply_group(
    session: AsyncSession,
    note: GroupDispatchNotification,
    *,
    zones: Mapping[str, str],
    source: str,
    webhook_event_id: uuid.UUID | None,
    refresh: bool,
) -> Applied:
    applied = Applied()
    test = note.integration_test_notification
    for group in note.group_dispatches:
        listed = sorted(set(group.meter_ids), key=drift.by_value)
        tz = await _group_zone(session, group, zones)
        # The last timeslot of a body wins when Leap repeats an id inside one body.
        slots: dict[uuid.UUID, GroupDispatchTimeslot] = {
            s.market_group_event_id: s for s in group.timeslots
        }
        days = sorted(
            {s.start_time.astimezone(tz).date() for s in slots.values() if not s.cancelled}
        )
        # A test notification never raises a drift alarm; the others are compared with
        # our roster while this transaction writes the timeslots.
        checking = (
            drift.start(_engine(session), group.market_group_id, days, listed)
            if days and not test
            else None
        )
        try:
            rows, ids = await _write_group(
                session, note, group.market_group_id, listed, slots, tz, source, webhook_event_id
            )
            differences = await checking if checking is not None else {}
        finally:
            if checking is not None and not checking.done():
                checking.cancel()
        applied.dispatch_ids.update(ids)
        applied.drifts += await _record_drifts(
            session, group.market_group_id, rows, ids, differences
        )
    if refresh:
        concerned = {m for d in applied.drifts for m in (*d.leap_only, *d.local_only)}
        await jobs.enqueue_refreshes(session, sorted(concerned, key=drift.by_value))
    return applied


def _engine(session: AsyncSession) -> AsyncEngine:
    engine = session.bind
    assert isinstance(engine, AsyncEngine)
    return engine


async def _write_group(
    session: AsyncSession,
    note: GroupDispatchNotification,
    group_id: uuid.UUID,
    listed: list[uuid.UUID],
    slots: dict[uuid.UUID, GroupDispatchTimeslot],
    tz: ZoneInfo,
    source: str,
    webhook_event_id: uuid.UUID | None,
) -> tuple[list[DispatchRow], dict[uuid.UUID, int]]:
    """The group's meter list (stored once per distinct list) and its timeslots."""
    test = note.integration_test_notification
    set_id = await repo.group_meter_set(session, listed)
    before = await repo.lock_existing(session, [("group", e, test) for e in slots])
    rows = [
        _row(
            slot,
            kind="group",
            event_id=event_id,
            test=test,
            communication=note.communication_test,
            group_id=group_id,
            set_id=set_id,
            tz=tz,
            source=source,
            webhook_event_id=webhook_event_id,
        )
        for event_id, slot in slots.items()
    ]
    stored = await repo.upsert_dispatches(session, rows)
    await repo.drop_unused_sets(
        session, {e.meter_set_id for e in before.values() if e.meter_set_id != set_id}
    )
    await _record_changes(session, rows, {key[1] for key in before}, group_id=group_id)
    return rows, {event_id: x.id for event_id, x in stored.items()}


async def _record_drifts(
    session: AsyncSession,
    group_id: uuid.UUID,
    rows: list[DispatchRow],
    ids: dict[uuid.UUID, int],
    differences: Mapping[date, drift.Difference],
) -> list[Drift]:
    """Store each timeslot's check; return the drifts to report."""
    found: list[Drift] = []
    # A redelivery, a replay or the search backstop re-checks a timeslot: only a finding
    # that differs from the stored one is reported again (counted once per timeslot).
    previous = await repo.previous_drifts(session, list(ids.values()))
    await repo.clear_drifts(session, [ids[r.dispatch_event_id] for r in rows if r.cancelled])
    for row in rows:
        if row.trade_date not in differences or row.cancelled:
            continue
        leap_only, local_only = differences[row.trade_date]
        dispatch_id = ids[row.dispatch_event_id]
        await repo.record_drift(
            session, dispatch_id, group_id, row.trade_date, leap_only, local_only
        )
        unchanged = previous.get(dispatch_id) == repo.drift_key(leap_only, local_only)
        if (leap_only or local_only) and not unchanged:
            found.append(
                Drift(row.dispatch_event_id, group_id, row.trade_date, leap_only, local_only)
            )
            await changes.record_dispatch_change(
                session,
                "drift",
                row.dispatch_event_id,
                market_group_id=group_id,
                summary={"trade_date": row.trade_date.isoformat(),
                         "leap_only_count": len(leap_only),
                         "local_only_count": len(local_only)},
            )  # fmt: skip
    return found


async def _apply_meter(
    session: AsyncSession,
    note: MeterDispatchNotification,
    *,
    zones: Mapping[str, str],
    source: str,
    webhook_event_id: uuid.UUID | None,
) -> Applied:
    test = note.integration_test_notification
    regions = await repo.meter_regions(session, [d.meter_id for d in note.meter_dispatches])
    # One meter_event_id may name several meters: they are all that dispatch's meters.
    slots: dict[uuid.UUID, tuple[MeterDispatchTimeslot, ZoneInfo]] = {}
    meters: dict[uuid.UUID, list[uuid.UUID]] = {}
    for dispatch in note.meter_dispatches:
        tz = zone_for(regions.get(dispatch.meter_id), zones)
        for slot in dispatch.timeslots:
            slots[slot.meter_event_id] = (slot, tz)
            meters.setdefault(slot.meter_event_id, []).append(dispatch.meter_id)
    before = await repo.lock_existing(session, [("meter", e, test) for e in slots])
    missing = [e for e in slots if ("meter", e, test) not in before]
    set_ids = {key[1]: found.meter_set_id for key, found in before.items()}
    new_sets = await repo.new_own_sets(session, len(missing))
    set_ids.update(zip(missing, new_sets, strict=True))
    rows = [
        _row(
            slot,
            kind="meter",
            event_id=event_id,
            test=test,
            communication=note.communication_test,
            group_id=None,
            set_id=set_ids[event_id],
            tz=tz,
            source=source,
            webhook_event_id=webhook_event_id,
        )
        for event_id, (slot, tz) in slots.items()
    ]
    stored = await repo.upsert_dispatches(session, rows)
    # A concurrent first delivery may have won the insert: the stored row's list is used.
    pairs = [
        (stored[event_id].meter_set_id, meter_id)
        for event_id, listed in meters.items()
        for meter_id in listed
    ]
    await repo.add_to_own_sets(session, pairs)
    await _record_changes(session, rows, {key[1] for key in before})
    return Applied(dispatch_ids={event_id: x.id for event_id, x in stored.items()})


async def _record_changes(
    session: AsyncSession,
    rows: list[DispatchRow],
    known: set[uuid.UUID],
    *,
    group_id: uuid.UUID | None = None,
) -> None:
    """The change feed hears of each timeslot, new or updated (test notifications: never)."""
    for row in rows:
        await changes.record_dispatch_change(
            session,
            "updated" if row.dispatch_event_id in known else "received",
            row.dispatch_event_id,
            market_group_id=group_id,
            summary={"kind": row.kind, "trade_date": row.trade_date.isoformat(),
                     "cancelled": row.cancelled},
            is_test=row.integration_test,
        )  # fmt: skip


async def apply_notification(
    session: AsyncSession,
    note: DispatchNotification,
    *,
    webhook_event_id: uuid.UUID | None,
    refresh: bool,
    zones: Mapping[str, str],
    source: str = "webhook",
) -> Applied:
    """Apply one notification (or one search page) without committing."""
    if isinstance(note, GroupDispatchNotification):
        return await _apply_group(
            session,
            note,
            zones=zones,
            source=source,
            webhook_event_id=webhook_event_id,
            refresh=refresh,
        )
    return await _apply_meter(
        session, note, zones=zones, source=source, webhook_event_id=webhook_event_id
    )


def report(applied: Applied) -> None:
    """After commit: one warning line and the metrics for each timeslot found drifting."""
    for found in applied.drifts:
        metrics.dispatch_drift(found.size)
        log.warning(
            "dispatch drift",
            extra={
                "dispatch_event_id": str(found.dispatch_event_id),
                "market_group_id": str(found.market_group_id),
                "trade_date": found.trade_date.isoformat(),
                "leap_only_count": len(found.leap_only),
                "local_only_count": len(found.local_only),
                "leap_only": [str(m) for m in found.leap_only[:20]],
                "local_only": [str(m) for m in found.local_only[:20]],
            },
        )


def _reapplier(event_type: str) -> Reapplier:
    async def reapply(
        session: AsyncSession, raw: bytes, event_id: uuid.UUID, options: ApplyOptions
    ) -> None:
        """Apply a stored dispatch body again (worker retry, ops replay). Raises
        ValueError / ValidationError / BadBody for a body that can never apply."""
        note = parse_notification(event_type, parsing.decode(raw))
        applied = await apply_notification(
            session, note, webhook_event_id=event_id, refresh=options.refresh, zones=options.zones
        )
        report(applied)

    return reapply


# How the event log applies stored dispatch bodies again (see ApplyOptions.reappliers).
REAPPLIERS: dict[str, Reapplier] = {kind: _reapplier(kind) for kind in DISPATCH_EVENT_TYPES}
