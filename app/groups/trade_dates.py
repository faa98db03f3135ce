"""Trade dates, market time zones and market-group membership windows.

Pure functions: no database, no I/O. A trade date is a calendar day in the market's
local time zone; Leap identifies it by the UTC instant that day starts at
(CAISO 2021-06-02 -> 2021-06-02T07:00:00Z).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from app.clock import utc_now

__all__ = [
    "MAX_TRADE_DATES",
    "MembershipWindow",
    "current_trade_date",
    "default_trade_dates",
    "trade_date_of",
    "trade_date_range",
    "trade_date_start",
    "window_for",
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


@dataclass(frozen=True, slots=True)
class MembershipWindow:
    """A period during which a meter belongs to one market group.

    `end` is inclusive: Leap writes a monthly period's end as the start of its last day.
    `seq` is insertion order; on equal starts the later insertion wins.
    """

    market_group_id: UUID
    start: datetime
    end: datetime
    seq: int = 0
    market_group_name: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.start, "start")
        _require_aware(self.end, "end")

    def covers(self, day_start: datetime) -> bool:
        return self.start <= day_start <= self.end


def window_for(windows: Iterable[MembershipWindow], day_start: datetime) -> MembershipWindow | None:
    """The window that decides the market group of the trade date starting at `day_start`.

    Ends are inclusive, so a window ending at June 1's start still covers June 1 even
    though June's own window starts there too; the latest start wins such overlaps.
    Equal starts go to the higher seq, and equal seqs to the later window in `windows`.
    Returns None when no window covers the day.
    """
    _require_aware(day_start, "day_start")
    best: MembershipWindow | None = None
    for window in windows:
        if not window.covers(day_start):
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
