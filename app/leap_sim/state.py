"""The fake Leap's mutable state: portfolio, subscriptions, and the evolutions that emit events.

Every evolution stamps the touched meters' `audit.updated_at` (through the portfolio
overlay) and emits Leap's event for it, in Leap's envelope, to every subscription that
selected that event type. Each subscription receives its own `webhook_event_id`.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.leap_sim import regions as R
from app.leap_sim.dispatch import DispatchSurface
from app.leap_sim.faults import FaultInjector
from app.leap_sim.portfolio import FAR_FUTURE, MeterCore, Portfolio, iso
from app.leap_sim.sender import Sender, Target

JSON = dict[str, Any]
DEV_API_KEY = "sim-key"
EVENT_TYPES = (
    "meter.created",
    "connect_session.updated",
    "connect_session.authorization_updated",
    "meter.enrollment.global-status.updated",
    "meter.enrollment.participation-status.updated",
    "meter.enrollment.required-actions.updated",
    "meter.enrollment.group.updated",
)


def default_api_key() -> str:
    return os.environ.get("LEAP_SIM_API_KEY") or DEV_API_KEY


class UnknownMeter(LookupError):
    pass


@dataclass(slots=True)
class Subscription:
    webhook_id: str
    event_types: list[str]
    headers: list[dict[str, str]]
    receiver_url: str

    def as_json(self) -> JSON:
        return {
            "webhook_id": self.webhook_id,
            "event_types": list(self.event_types),
            "headers": [dict(h) for h in self.headers],
            "receiver_url": self.receiver_url,
        }

    def target(self) -> Target:
        pairs = tuple((h["name"], h["value"]) for h in self.headers)
        return Target(self.webhook_id, self.receiver_url, pairs)


@dataclass
class SimState:
    portfolio: Portfolio
    api_key: str = field(default_factory=default_api_key)
    sender: Sender = field(default_factory=Sender)
    faults: FaultInjector = field(default_factory=FaultInjector)
    webhooks: dict[str, Subscription] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    emitted: deque[JSON] = field(default_factory=lambda: deque(maxlen=50_000))
    rosters: dict[str, set[int]] = field(default_factory=dict)
    dispatch: DispatchSurface = field(default_factory=DispatchSurface)

    # ---- events ---------------------------------------------------------------------
    def emit(self, payload: JSON) -> list[str]:
        """Send one event to every subscription selecting its type; returns event ids."""
        ids: list[str] = []
        for sub in self.webhooks.values():
            if payload["webhook_event_type"] not in sub.event_types:
                continue
            envelope = {"webhook_event_id": str(uuid.uuid4()), "payload": payload}
            self.emitted.append({"webhook_id": sub.webhook_id, **envelope})
            self.counts["events_emitted"] += 1
            self.sender.submit(sub.target(), envelope)
            ids.append(str(envelope["webhook_event_id"]))
        return ids

    @staticmethod
    def meter_payload(event_type: str, c: MeterCore) -> JSON:
        out: JSON = {"webhook_event_type": event_type, "meter_id": c.meter_id}
        if c.partner_reference is not None:
            out["partner_reference"] = c.partner_reference
        out["transmission_region"] = c.region.name
        out["meter_type"] = c.meter_type
        return out

    def _cores(self, meter_ids: Iterable[str]) -> list[MeterCore]:
        cores = []
        for meter_id in meter_ids:
            index = self.portfolio.index_of(meter_id)
            core = None if index is None else self.portfolio.core(index)
            if core is None:
                raise UnknownMeter(meter_id)
            cores.append(core)
        return cores

    def _existing(self, meter_id: str) -> int:
        index = self.portfolio.index_of(meter_id)
        mut = None if index is None else self.portfolio.overlay.get(index)
        if index is None or (mut is not None and mut.removed):
            raise UnknownMeter(meter_id)
        return index

    def _touch(self, c: MeterCore) -> MeterCore:
        """The meter as it reads after a mutation."""
        fresh = self.portfolio.core(c.index)
        assert fresh is not None
        return fresh

    # ---- evolutions -----------------------------------------------------------------
    def add_meters(
        self,
        count: int,
        region: str | None = None,
        meter_type: str | None = None,
        partner_reference: str | None = None,
    ) -> tuple[list[str], list[str]]:
        """New PENDING meters: their ids and the ids of the `meter.created` events sent."""
        out, events = [], []
        for _ in range(count):
            index = self.portfolio.add_meter(region, meter_type, partner_reference)
            core = self.portfolio.core(index)
            assert core is not None
            events += self.emit(self.meter_payload("meter.created", core))
            out.append(core.meter_id)
        return out, events

    def set_status(self, meter_ids: list[str], status: str) -> list[str]:
        events = []
        for c in self._cores(meter_ids):
            self.portfolio.mutate(c.index).status = status
            payload = self.meter_payload("meter.enrollment.global-status.updated", self._touch(c))
            payload["global_enrollment_status"] = status
            events += self.emit(payload)
        return events

    def set_participation(
        self,
        meter_ids: list[str],
        preference: str,
        start: datetime,
        end: datetime | None,
        reason: str | None = None,
    ) -> list[str]:
        events = []
        start_s = iso(start)
        end_s = FAR_FUTURE if end is None else iso(end)
        for c in self._cores(meter_ids):
            windows = []
            for w in c.participation:
                if w["start_time"] >= start_s:
                    continue  # replaced by the new window
                if w.get("end_time", FAR_FUTURE) > start_s:
                    w = {**w, "end_time": start_s}
                windows.append(w)
            window: JSON = {"participation_preference": preference, "start_time": start_s}
            window["end_time"] = end_s
            if reason:
                window["reason"] = reason
            windows.append(window)
            self.portfolio.mutate(c.index).participation = windows
            payload = self.meter_payload(
                "meter.enrollment.participation-status.updated", self._touch(c)
            )
            payload.update(participation_preference=preference, start_time=start_s, end_time=end_s)
            events += self.emit(payload)
        return events

    def default_action(self, c: MeterCore, action_type: str, side: str) -> JSON:
        table = R.PARTNER_ACTIONS if side == "partner" else R.LEAP_ACTIONS
        code, text = next(((k, t) for a, k, t in table if a == action_type), ("SERV_0001", ""))
        upcoming = self.portfolio.program_periods[c.region.name, 0][2]
        program = c.region.programs[0]
        return {
            "program_identifier": program.identifier,
            "delivery_period": f"{program.period_prefix}_{upcoming.label}",
            "enrollment_deadline_date_time": iso(upcoming.start - timedelta(days=2)),
            "action_type": action_type,
            "action_description": text or f"Action required: {action_type}",
            "action_code": code,
        }

    def set_required_actions(
        self,
        meter_ids: list[str],
        partner: list[JSON | str],
        leap: list[JSON | str] | None = None,
    ) -> list[str]:
        """Replace a meter's required actions; strings expand to a default action."""
        events = []
        for c in self._cores(meter_ids):
            p_actions = [
                a if isinstance(a, dict) else self.default_action(c, a, "partner") for a in partner
            ]
            mut = self.portfolio.mutate(c.index)
            mut.partner_actions = p_actions
            if leap is not None:
                mut.leap_actions = [
                    a if isinstance(a, dict) else self.default_action(c, a, "leap") for a in leap
                ]
            fresh = self._touch(c)
            payload = self.meter_payload("meter.enrollment.required-actions.updated", fresh)
            # Leap sends an empty object once every action is resolved
            payload["required_actions"] = {"partner": p_actions} if p_actions else {}
            payload["global_enrollment_status"] = fresh.status
            events += self.emit(payload)
        return events

    def archive(self, meter_ids: list[str], archived: bool = True) -> None:
        """Leap has no archival event: only the records change."""
        for c in self._cores(meter_ids):
            self.portfolio.mutate(c.index).is_archived = archived

    def remove(self, meter_ids: list[str]) -> None:
        """The meters vanish from Leap's API (404, absent from searches); no event."""
        for c in self._cores(meter_ids):
            self.portfolio.mutate(c.index).removed = True

    def set_roster(
        self, market_group_id: str, start: datetime, end: datetime, meter_ids: list[str]
    ) -> list[str]:
        """The group's members for [start, end] become exactly `meter_ids`."""
        group = self.portfolio.group_by_id[market_group_id]
        key = f"{market_group_id}|{iso(start)}|{iso(end)}"
        members = [self._existing(m) for m in dict.fromkeys(meter_ids)]
        entry = self.portfolio.roster_entry(group, start, end)
        previous = self.rosters.get(key, set())
        current = set(members)
        for index in previous - current:
            self.portfolio.mutate(index).programs.pop(key, None)
        for index in members:
            self.portfolio.mutate(index).programs[key] = entry
        self.rosters[key] = current
        return self.emit(
            {
                "webhook_event_type": "meter.enrollment.group.updated",
                "market_group_id": market_group_id,
                "market_group_name": group.name,
                "start_date_time": iso(start),
                "end_date_time": iso(end),
                "meter_ids": list(dict.fromkeys(meter_ids)),
            }
        )

    def pick_members(self, market_group_id: str, count: int) -> list[str]:
        """The first `count` ACTIVE, unarchived meters of the group's region."""
        region = self.portfolio.group_by_id[market_group_id].region
        out: list[str] = []
        for index in range(self.portfolio.count):
            if len(out) >= count:
                break
            if self.portfolio.region_of(index) != region:
                continue
            c = self.portfolio.core(index)
            if c and c.region.name == region and c.status == "ACTIVE" and not c.is_archived:
                out.append(c.meter_id)
        return out

    def connect_session(self, partner_reference: str, status: str) -> list[str]:
        return self.emit(
            {
                "webhook_event_type": "connect_session.updated",
                "partner_reference": partner_reference,
                "status": status,
            }
        )

    def authorization(self, partner_reference: str, utility_name: str, status: str) -> list[str]:
        return self.emit(
            {
                "webhook_event_type": "connect_session.authorization_updated",
                "partner_reference": partner_reference,
                "utility_name": utility_name,
                "status": status,
            }
        )

    def connect_flow(
        self,
        connection_reference: str,
        utility_name: str,
        meters: int = 1,
        region: str | None = None,
        meter_type: str | None = None,
        partner_reference: str | None = None,
    ) -> tuple[list[str], list[str]]:
        """A customer going through Leap Connect with refId `connection_reference`: the
        session and authorization events, then `meter.created` for each meter the
        authorization produced. Those meters list the refId in `connection_references`;
        their own `partner_reference` is `partner_reference` (None: not set)."""
        events = self.connect_session(connection_reference, "CREATED")
        events += self.connect_session(connection_reference, "UPDATED")
        events += self.authorization(connection_reference, utility_name, "INITIATED")
        events += self.authorization(connection_reference, utility_name, "COMPLETED")
        events += self.connect_session(connection_reference, "COMPLETED")
        meter_ids = []
        for _ in range(meters):
            index = self.portfolio.add_meter(
                region, meter_type, partner_reference, [connection_reference]
            )
            core = self.portfolio.core(index)
            assert core is not None
            events += self.emit(self.meter_payload("meter.created", core))
            meter_ids.append(core.meter_id)
        return meter_ids, events

    def stats(self) -> JSON:
        return {
            "meters": self.portfolio.count,
            "mutated_meters": len(self.portfolio.overlay),
            "groups": len(self.portfolio.groups),
            "webhooks": len(self.webhooks),
            "requests": dict(self.requests),
            "events_emitted": self.counts["events_emitted"],
            "deliveries": self.sender.stats(),
            "faults": self.faults.stats(),
        }
