"""Delivery periods and group windows, written the way Leap writes them.

Leap ends the two kinds of window differently (see docs/leap-contract.md):

- a program's delivery period ends at the *start of its last day*: CAISO November is
  `2024-11-01T07:00:00Z` .. `2024-11-30T08:00:00Z`; a seasonal period such as
  `NYISO-SCR_2024_MAY_OCT` ends at the start of October 31 in New York;
- a market group's window ends when the group *becomes inactive*: the May group is
  `2024-05-01T04:00:00Z` .. `2024-06-01T04:00:00Z` (the next month's first local midnight).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.leap_sim import regions as R
from app.leap_sim.shapes import Period

PERIOD_OFFSETS = (-1, 0, 1, 2)


def _month(index: int) -> date:
    """First day of month number `index` (year * 12 + month - 1)."""
    return date(index // 12, index % 12 + 1, 1)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def label(first: date, last: date) -> str:
    """`2024_NOV` for one month, `2024_MAY_OCT` for several (year of the first month)."""
    months = R.MONTHS[first.month - 1]
    if (first.year, first.month) != (last.year, last.month):
        months += "_" + R.MONTHS[last.month - 1]
    return f"{first.year}_{months}"


def period(first: date, last: date, tz: ZoneInfo, offset: int) -> Period:
    """A delivery period over the local days first..last (end: start of `last`)."""
    return Period(offset, local_midnight(first, tz), local_midnight(last, tz), label(first, last))


def monthly_periods(region: R.Region, anchor: datetime) -> list[Period]:
    tz = ZoneInfo(region.timezone)
    local = anchor.astimezone(tz).date()
    out = []
    for offset in PERIOD_OFFSETS:
        month0 = local.year * 12 + local.month - 1 + offset
        first, after = _month(month0), _month(month0 + 1)
        out.append(period(first, after - timedelta(days=1), tz, offset))
    return out


def seasonal_periods(
    region: R.Region, season_starts: tuple[int, ...], anchor: datetime
) -> list[Period]:
    """Periods of a program with seasons (e.g. May-Oct and Nov-Apr), around `anchor`."""
    tz = ZoneInfo(region.timezone)
    local = anchor.astimezone(tz).date()
    now = local.year * 12 + local.month - 1
    # the season start at or before the anchor's month, then its neighbours
    starts = sorted({y * 12 + m - 1 for y in (local.year - 2, local.year - 1, local.year,
                                               local.year + 1, local.year + 2)
                     for m in season_starts})  # fmt: skip
    current = max(i for i, s in enumerate(starts) if s <= now)
    out = []
    for offset in PERIOD_OFFSETS:
        begin, end = starts[current + offset], starts[current + offset + 1]
        out.append(period(_month(begin), _month(end) - timedelta(days=1), tz, offset))
    return out


def program_periods(region: R.Region, program: R.Program, anchor: datetime) -> list[Period]:
    if program.season_starts:
        return seasonal_periods(region, program.season_starts, anchor)
    return monthly_periods(region, anchor)


def group_window(region: R.Region, at: datetime) -> tuple[datetime, datetime]:
    """The monthly group window holding `at`: first local midnight of the month, and the
    instant the group becomes inactive (the next month's first local midnight)."""
    tz = ZoneInfo(region.timezone)
    local = at.astimezone(tz).date()
    month0 = local.year * 12 + local.month - 1
    return local_midnight(_month(month0), tz), local_midnight(_month(month0 + 1), tz)


def delivery_period_of_window(region: R.Region, start: datetime, end: datetime) -> Period:
    """The delivery period a group window [start, end) stands for: same start, ending one
    local day before `end` (for a window between midnights: the start of its last day)."""
    tz = ZoneInfo(region.timezone)
    # wall-clock arithmetic in the market's zone, so a DST change in between is respected
    last = max(end.astimezone(tz) - timedelta(days=1), start.astimezone(tz))
    first_day, last_day = start.astimezone(tz).date(), last.date()
    return Period(0, start.astimezone(UTC), last.astimezone(UTC), label(first_day, last_day))
