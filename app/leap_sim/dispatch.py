"""The fake Leap's dispatch surface: webhook registrations, sent dispatches, searches.

Dispatches go to the URL registered for their kind (meter or group) with its headers,
retried on Leap's dispatch schedule (every minute, up to 50 attempts), each delay scaled
by the simulator's `time_factor`. Every dispatch sent is also kept, latest word per
event id, for the two searches. A group is dispatched with its true roster (the members
the simulator last set for the window covering the timeslot), optionally with a chosen
drift: `add` meters that are not members, `leave_out` members.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from app.leap.dispatch import DISPATCH_RETRY_SCHEDULE
from app.leap_sim.portfolio import iso
from app.leap_sim.sender import Attempt, Target

if TYPE_CHECKING:
    from app.leap_sim.state import SimState

JSON = dict[str, Any]
Kind = Literal["meter", "group"]
PAGE_SIZE = 500


class NoRoster(LookupError):
    """The simulator holds no roster for the group at that time."""


@dataclass(slots=True)
class Registration:
    url: str
    headers: list[dict[str, str]]

    def as_json(self) -> JSON:
        return {"url": self.url, "headers": [dict(h) for h in self.headers]}

    def target(self, kind: Kind) -> Target:
        pairs = tuple((h["name"], h["value"]) for h in self.headers)
        return Target(f"dispatch-{kind}", self.url, pairs)


@dataclass(slots=True)
class DispatchDelivery:
    id: str
    kind: Kind
    url: str
    attempts: list[Attempt] = field(default_factory=list)
    outcome: Literal["pending", "delivered", "dropped"] = "pending"

    def as_json(self) -> JSON:
        return {
            "id": self.id,
            "kind": self.kind,
            "url": self.url,
            "outcome": self.outcome,
            "attempts": [a.as_json() for a in self.attempts],
        }


@dataclass(slots=True)
class _Stored:
    """The latest word on one timeslot, for the searches."""

    event_id: str
    owner: str  # market_group_id or meter_id
    meter_ids: tuple[str, ...]
    partner_reference: str | None
    timeslot: JSON
    start: datetime


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class DispatchSurface:
    registrations: dict[str, Registration] = field(default_factory=dict)
    deliveries: dict[str, DispatchDelivery] = field(default_factory=dict)
    sent: list[JSON] = field(default_factory=list)
    schedule: tuple[float, ...] = DISPATCH_RETRY_SCHEDULE
    # Keyed by (event id, meter_id or market_group_id): one meter_event_id may name several.
    _stored: dict[Kind, dict[tuple[str, str], _Stored]] = field(
        default_factory=lambda: {"meter": {}, "group": {}}
    )
    _pages: dict[str, tuple[str, int]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    demo_log: list[JSON] = field(default_factory=list)
    demo: asyncio.Task[None] | None = None
    # (every seconds, drift): the demo the app starts with (`leap-sim --dispatch-every`).
    demo_at_start: tuple[float, int] | None = None

    def start_demo(self, state: SimState, every_s: float, drift: int) -> None:
        self.stop_demo()
        self.demo = asyncio.create_task(demo_loop(state, every_s, drift))

    def stop_demo(self) -> None:
        if self.demo is not None:
            self.demo.cancel()
            self.demo = None

    # ---- sending ----------------------------------------------------------------------
    def send(self, state: SimState, kind: Kind, body: JSON, *, keep: bool = True) -> str | None:
        """Queue a notification for the registered URL (None when nothing is registered)."""
        if keep:
            self._keep(kind, body)
        self.sent.append(body)
        registration = self.registrations.get(kind)
        if registration is None:
            return None
        delivery = DispatchDelivery(str(uuid.uuid4()), kind, registration.url)
        self.deliveries[delivery.id] = delivery
        raw = json.dumps(body, separators=(",", ":")).encode()
        task = asyncio.create_task(self._deliver(state, registration.target(kind), raw, delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return delivery.id

    async def _deliver(
        self, state: SimState, target: Target, raw: bytes, delivery: DispatchDelivery
    ) -> None:
        for number, delay in enumerate(self.schedule, start=1):
            await asyncio.sleep(delay * state.sender.time_factor)
            attempt = await state.sender.attempt(target, raw, number=number)
            delivery.attempts.append(attempt)
            if attempt.ok:
                delivery.outcome = "delivered"
                return
        delivery.outcome = "dropped"

    async def attempt_once(self, state: SimState, kind: Kind, body: JSON) -> Attempt | None:
        """One delivery, answered to the caller (Leap's integration test)."""
        registration = self.registrations.get(kind)
        if registration is None:
            return None
        raw = json.dumps(body, separators=(",", ":")).encode()
        return await state.sender.attempt(registration.target(kind), raw)

    async def drain(self, seconds: float) -> bool:
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=seconds)
        return not pending

    async def aclose(self) -> None:
        self.stop_demo()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- searches ---------------------------------------------------------------------
    def _keep(self, kind: Kind, body: JSON) -> None:
        if body.get("integration_test_notification"):
            return
        if kind == "group":
            for item in body["group_dispatches"]:
                ids = tuple(item["meter_ids"])
                for slot in item["timeslots"]:
                    event_id = slot["market_group_event_id"]
                    self._stored["group"][(event_id, item["market_group_id"])] = _Stored(
                        event_id, item["market_group_id"], ids, None, slot,
                        _parse(slot["start_time"]),
                    )  # fmt: skip
        else:
            for item in body["meter_dispatches"]:
                for slot in item["timeslots"]:
                    event_id = slot["meter_event_id"]
                    self._stored["meter"][(event_id, item["meter_id"])] = _Stored(
                        event_id,
                        item["meter_id"],
                        (item["meter_id"],),
                        item.get("partner_reference"),
                        slot,
                        _parse(slot["start_time"]),
                    )

    def search(
        self, kind: Kind, start: datetime, end: datetime, filters: JSON, token: str | None
    ) -> JSON:
        """One page of results: timeslots starting in [start, end), grouped per owner."""
        offset = 0
        if token is not None:
            found = self._pages.pop(token, None)
            if found is None or found[0] != kind:
                raise ValueError("unknown page_token")
            offset = found[1]
        owners = set(filters.get("market_group_ids") or filters.get("meter_ids") or [])
        event_ids = set(
            filters.get("market_group_event_ids") or filters.get("meter_event_ids") or []
        )
        grouped: dict[tuple[str, tuple[str, ...]], list[_Stored]] = {}
        for stored in self._stored[kind].values():
            if not start <= stored.start < end:
                continue
            if owners and stored.owner not in owners:
                continue
            if event_ids and stored.event_id not in event_ids:
                continue
            if filters.get("exclude_voluntary_events") and stored.timeslot.get("is_voluntary"):
                continue
            grouped.setdefault((stored.owner, stored.meter_ids), []).append(stored)
        keys = list(grouped)
        page = keys[offset : offset + PAGE_SIZE]
        results = []
        for owner, meter_ids in page:
            slots = [s.timeslot for s in grouped[(owner, meter_ids)]]
            if kind == "group":
                results.append(
                    {"market_group_id": owner, "meter_ids": list(meter_ids), "timeslots": slots}
                )
            else:
                item: JSON = {"meter_id": owner, "timeslots": slots}
                reference = grouped[(owner, meter_ids)][0].partner_reference
                if reference is not None:
                    item["partner_reference"] = reference
                results.append(item)
        out: JSON = {"results": results}
        if offset + PAGE_SIZE < len(keys):
            token = str(uuid.uuid4())
            self._pages[token] = (kind, offset + PAGE_SIZE)
            out["next_page_token"] = token
        return out


# ---- building notifications ----------------------------------------------------------------


def timeslot(
    id_key: str,
    start: datetime,
    end: datetime,
    *,
    event_id: str | None = None,
    energy_kw: float | None = 100.0,
    nomination_kw: float | None = 100.0,
    cancelled: bool = False,
    programs: list[str] | None = None,
    priority: int = 1,
    is_voluntary: bool = False,
    cap: str = "up-to-nomination",
    event_types: list[str] | None = None,
) -> JSON:
    slot: JSON = {
        id_key: event_id or str(uuid.uuid4()),
        "start_time": iso(start),
        "end_time": iso(end),
        "energy_kw": energy_kw,
        "cancelled": cancelled,
        "programs": programs or ["CCA"],
        "priority": priority,
        "is_voluntary": is_voluntary,
        "performance_compensation_cap": cap,
        "dispatch_event_types": event_types or ["day-ahead"],
    }
    if nomination_kw is not None:
        slot["nomination_kw"] = nomination_kw
    return slot


def true_roster(state: SimState, market_group_id: str, at: datetime) -> list[str]:
    """The members the simulator set for the window covering `at` (latest start wins;
    a window ends at the instant the group becomes inactive, as Leap writes it)."""
    best: tuple[datetime, set[int]] | None = None
    for key, members in state.rosters.items():
        group_id, start_s, end_s = key.split("|")
        if group_id != market_group_id:
            continue
        start, end = _parse(start_s), _parse(end_s)
        if start <= at < end and (best is None or start >= best[0]):
            best = (start, members)
    if best is None:
        raise NoRoster(market_group_id)
    return sorted(state.portfolio.meter_id(i) for i in best[1])


def outsiders(state: SimState, market_group_id: str, members: set[str], count: int) -> list[str]:
    """`count` meters of the group's region that are not members (fresh ids if short)."""
    region = state.portfolio.group_by_id[market_group_id].region
    out: list[str] = []
    for index in range(state.portfolio.count):
        if len(out) >= count:
            break
        if state.portfolio.region_of(index) != region:
            continue
        meter_id = state.portfolio.meter_id(index)
        if meter_id not in members:
            out.append(meter_id)
    while len(out) < count:
        out.append(str(uuid.uuid4()))
    return out


@dataclass(frozen=True, slots=True)
class GroupDispatch:
    body: JSON
    market_group_event_id: str
    meter_ids: list[str]
    added: list[str]
    left_out: list[str]


def group_dispatch(
    state: SimState,
    market_group_id: str,
    start: datetime,
    duration: timedelta,
    *,
    add: int = 0,
    leave_out: int = 0,
    meter_ids: list[str] | None = None,
    **slot_fields: Any,
) -> GroupDispatch:
    """A group notification: the true roster at `start` (or `meter_ids`), with drift."""
    roster = meter_ids if meter_ids is not None else true_roster(state, market_group_id, start)
    left_out = sorted(roster)[:leave_out]
    kept = [m for m in roster if m not in set(left_out)]
    added = outsiders(state, market_group_id, set(roster), add)
    listed = kept + added
    slot = timeslot("market_group_event_id", start, start + duration, **slot_fields)
    body = {
        "group_dispatches": [
            {"market_group_id": market_group_id, "meter_ids": listed, "timeslots": [slot]}
        ]
    }
    return GroupDispatch(body, slot["market_group_event_id"], listed, added, left_out)


def groups_with_roster(state: SimState, at: datetime) -> list[str]:
    """Groups whose simulator roster covers `at`."""
    found = []
    for key in state.rosters:
        group_id, start_s, end_s = key.split("|")
        if _parse(start_s) <= at < _parse(end_s) and group_id not in found:
            found.append(group_id)
    return found


async def demo_loop(state: SimState, every_s: float, drift: int) -> None:
    """For demos: every `every_s` seconds dispatch a group that has a roster now, an
    hour ahead, alternately with its true roster and with `drift` meters added and
    `drift` left out, so the receiver's alarm shows both ways."""
    turn = 0
    while True:
        await asyncio.sleep(every_s)
        now = datetime.now(UTC)
        candidates = groups_with_roster(state, now)
        if not candidates:
            continue
        group_id = candidates[turn % len(candidates)]
        injected = drift if turn % 2 else 0
        start = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        built = group_dispatch(
            state, group_id, start, timedelta(hours=1), add=injected, leave_out=injected
        )
        state.dispatch.send(state, "group", built.body)
        state.dispatch.demo_log.append(
            {
                "market_group_event_id": built.market_group_event_id,
                "market_group_id": group_id,
                "added": built.added,
                "left_out": built.left_out,
            }
        )
        turn += 1
