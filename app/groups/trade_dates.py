"""Trade dates, market time zones and market-group membership windows.

Pure functions: no database, no I/O. A trade date is a calendar day in the market's
local time zone; Leap identifies it by the UTC instant that day starts at
(CAISO 2021-06-02 -> 2021-06-02T07:00:00Z).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from app.clock import utc_now
from app.markets import zone_for

__all__ = [
    "MAX_TRADE_DATES",
    "MembershipWindow",
    "covered_days",
    "current_trade_date",
    "default_trade_dates",
    "trade_date_of",
    "trade_date_range",
    "trade_date_start",
    "window_for",
    "windows_by_meter",
    "zone_of",
    "zone_starting_at_midnight",
    "zones_starting_at_midnight",
]

MAX_TRADE_DATES = 366


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value.isoformat()}")


def trade_date_start(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which `day` begins in `tz`."""
    # fold=0 picks the earlier reading of an ambiguous local midnight, and for a midnight
    # skipped by a DST gap it lands exactly on the transition, i.e. the first real
    # instant of the day. (US zones switch at 02:00, so neither arises for them.)
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def trade_date_of(instant: datetime, tz: ZoneInfo) -> date:
    """The local calendar day in `tz` that an aware instant falls in."""
    _require_aware(instant, "instant")
    return instant.astimezone(tz).date()


def current_trade_date(tz: ZoneInfo, now: datetime | None = None) -> date:
    return trade_date_of(utc_now() if now is None else now, tz)


def trade_date_range(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included; at most MAX_TRADE_DATES days."""
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    days = (end - start).days + 1
    if days > MAX_TRADE_DATES:
        raise ValueError(f"range covers {days} days; at most {MAX_TRADE_DATES} are allowed")
    return [start + timedelta(days=i) for i in range(days)]


def default_trade_dates(tz: ZoneInfo, now: datetime | None = None, count: int = 3) -> list[date]:
    """The current trade date in `tz` and the `count - 1` days after it."""
    if not 1 <= count <= MAX_TRADE_DATES:
        raise ValueError(f"count must be between 1 and {MAX_TRADE_DATES}, got {count}")
    first = current_trade_date(tz, now)
    return [first + timedelta(days=i) for i in range(count)]


def _local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The local date of `instant`, clamped to date.min/max where it cannot be read."""
    try:
        return instant.astimezone(tz).date()
    except (OverflowError, ValueError):
        return date.min if instant.year < 2000 else date.max


def covered_days(
    start: datetime, end: datetime, tz: ZoneInfo, *, end_inclusive: bool
) -> tuple[date, date]:
    """The first and last trade dates (in `tz`) whose start falls in the window.

    Leap writes two kinds of end. A group's `end_date_time` is when it becomes inactive:
    day D is covered when start <= D.start < end (`end_inclusive=False`). A delivery
    period's end is the start of its last day: start <= D.start <= end. An empty window
    gives first > last.
    """
    _require_aware(start, "start")
    _require_aware(end, "end")
    first = _local_date(start, tz)
    if first not in (date.min, date.max) and trade_date_start(first, tz) < start:
        first += timedelta(days=1)
    if end_inclusive:
        last = _local_date(end, tz)
    else:
        last = _local_date(
            end - timedelta(microseconds=1) if end > datetime.min.replace(tzinfo=UTC) else end, tz
        )
    return first, last


def zones_starting_at_midnight(instant: datetime, zones: Iterable[str]) -> list[str]:
    """The zones among `zones` in which `instant` is local midnight, in their order."""
    return [name for name in dict.fromkeys(zones) if _is_midnight(instant, ZoneInfo(name))]


def zone_starting_at_midnight(instant: datetime, zones: Iterable[str]) -> str | None:
    """The first of `zones` in which `instant` is local midnight (Leap starts a window at
    midnight in its market), or None."""
    found = zones_starting_at_midnight(instant, zones)
    return found[0] if found else None


def _is_midnight(instant: datetime, tz: ZoneInfo) -> bool:
    try:
        return instant.astimezone(tz).time() == time(0)
    except (OverflowError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class MembershipWindow:
    """The trade dates `first_day`..`last_day` (both included) during which a meter belongs
    to one market group; `start` and `seq` rank overlapping windows."""

    market_group_id: UUID
    start: datetime
    first_day: date
    last_day: date
    seq: int = 0
    market_group_name: str | None = None
    time_zone: str | None = None  # the group's market zone, when known

    def covers(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


def windows_by_meter(
    rows: Sequence[tuple[Any, ...]] | None,
) -> dict[UUID, list[MembershipWindow]]:
    """Each meter's windows from the records `groups.repository.windows_array` selects (in
    their order; None when there are none)."""
    found: dict[UUID, list[MembershipWindow]] = {}
    for meter_id, group_id, start, first_day, last_day, seq, name, zone in rows or ():
        found.setdefault(meter_id, []).append(
            MembershipWindow(
                market_group_id=group_id,
                start=start,
                first_day=first_day,
                last_day=last_day,
                seq=seq,
                market_group_name=name,
                time_zone=zone,
            )
        )
    return found


def window_for(windows: Iterable[MembershipWindow], day: date) -> MembershipWindow | None:
    """The window that decides the market group on trade date `day`: among those covering
    it the latest start wins, then the higher seq (the later write), then the later window
    in `windows`. None when no window covers the day."""
    best: MembershipWindow | None = None
    for window in windows:
        if not window.covers(day):
            continue
        if best is None or (window.start, window.seq) >= (best.start, best.seq):
            best = window
    return best


# Trade dates outside this range are refused: far years overflow datetime arithmetic.
EARLIEST_TRADE_DATE = date(1970, 1, 1)
LATEST_TRADE_DATE = date(2199, 12, 31)


def check_trade_date(day: date) -> date:
    if not EARLIEST_TRADE_DATE <= day <= LATEST_TRADE_DATE:
        raise ValueError(
            f"trade dates must be between {EARLIEST_TRADE_DATE} and {LATEST_TRADE_DATE}"
        )
    return day


def zone_of(
    region: str | None, windows: Iterable[MembershipWindow], zones: Mapping[str, str]
) -> ZoneInfo:
    """A meter's market zone: its region's; for a meter whose region is not known yet, the
    zone of its latest group (by start), else UTC."""
    if region is None:
        for window in sorted(windows, key=lambda w: (w.start, w.seq), reverse=True):
            if window.time_zone:
                return ZoneInfo(window.time_zone)
    return zone_for(region, zones)
