"""Small value types and Leap-shaped builders shared by the portfolio and the state."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.leap_sim import regions as R

JSON = dict[str, Any]
FAR_FUTURE = "9000-01-01T00:00:00Z"


def iso(value: datetime) -> str:
    """UTC instant as Leap writes it (`...Z`, microseconds kept when present)."""
    value = value.astimezone(UTC)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.isoformat(timespec=spec).replace("+00:00", "Z")


class Draw:
    """Successive bounded integers read from a keyed hash."""

    def __init__(self, *parts: object) -> None:
        self._seed = ":".join(str(p) for p in parts).encode()
        self._buf = hashlib.blake2b(self._seed, digest_size=64).digest()
        self._pos = 0
        self._round = 0

    def pick(self, bound: int) -> int:
        if self._pos + 4 > len(self._buf):
            self._round += 1
            self._buf = hashlib.blake2b(self._seed + bytes([self._round]), digest_size=64).digest()
            self._pos = 0
        value = int.from_bytes(self._buf[self._pos : self._pos + 4], "big")
        self._pos += 4
        return value % bound

    def chance(self, percent: int) -> bool:
        return self.pick(100) < percent


@dataclass(frozen=True, slots=True)
class Group:
    index: int
    market_group_id: str
    name: str
    region: str


@dataclass(frozen=True, slots=True)
class Period:
    offset: int
    start: datetime
    end: datetime
    label: str


@dataclass(slots=True)
class Mutation:
    """What the simulator changed about one meter; None means "as generated"."""

    updated_at: datetime
    created_at: datetime | None = None
    region: str | None = None
    meter_type: str | None = None
    partner_reference: str | None = None
    connection_references: list[str] | None = None
    status: str | None = None
    is_archived: bool | None = None
    removed: bool = False
    participation: list[JSON] | None = None
    partner_actions: list[JSON] | None = None
    leap_actions: list[JSON] | None = None
    # roster windows set through group.updated, keyed "group_id|start|end"
    programs: dict[str, JSON] = field(default_factory=dict)


@dataclass(slots=True)
class MeterCore:
    """The fields search filters look at; cheap to compute for any index."""

    index: int
    meter_id: str
    region: R.Region
    utility: R.Utility
    load_zone: str
    partner_reference: str | None
    connection_references: list[str]
    classification: str
    meter_type: str
    load_types: list[str]
    status: str
    customer_group: str
    tags: list[str]
    is_archived: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    group_slot: int
    partner_actions: list[JSON]
    leap_actions: list[JSON]
    participation: list[JSON]


def program_entry(program: R.Program, period: Period, status: str) -> JSON:
    mid = period.start + timedelta(days=14)
    return {
        "program_identifier": program.identifier,
        "delivery_period": f"{program.period_prefix}_{period.label}",
        "delivery_period_start_date_time": iso(period.start),
        "delivery_period_end_date_time": iso(period.end),
        "enrollment_status": status,
        "enrollment_deadlines": [
            {
                "enrollment_deadline_date_time": iso(period.start - timedelta(days=2)),
                "activation_date_time": iso(period.start),
            },
            {
                "enrollment_deadline_date_time": iso(mid - timedelta(days=2)),
                "activation_date_time": iso(mid),
            },
        ],
    }


def action(program: str, period: str, deadline: str, kind: str, code: str, text: str) -> JSON:
    return {
        "program_identifier": program,
        "delivery_period": period,
        "enrollment_deadline_date_time": deadline,
        "action_type": kind,
        "action_description": text,
        "action_code": code,
    }
