"""Trade dates, market zones and membership windows (pure functions, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from app.groups.trade_dates import (
    MembershipWindow,
    covered_days,
    current_trade_date,
    default_trade_dates,
    trade_date_of,
    trade_date_range,
    trade_date_start,
    window_for,
    zone_starting_at_midnight,
)
from app.markets import DEFAULT_MARKET_TIMEZONES, parse_market_timezones, zone_for

LA = ZoneInfo("America/Los_Angeles")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- the contract's example -------------------------------------------------------------


def test_caiso_example() -> None:
    tz = zone_for("CAISO")
    assert trade_date_start(date(2021, 6, 2), tz) == utc(2021, 6, 2, 7)
    assert trade_date_start(date(2021, 6, 2), tz).isoformat() == "2021-06-02T07:00:00+00:00"


def test_trade_date_start_is_in_utc() -> None:
    start = trade_date_start(date(2021, 6, 2), LA)
    assert start.tzinfo is UTC
    assert start.utcoffset() == timedelta(0)


# --- region -> zone ---------------------------------------------------------------------

REGION_ZONES = {
    "CAISO": "America/Los_Angeles",
    "WECC_PC": "America/Los_Angeles",
    "ERCOT": "America/Chicago",
    "SERC": "America/Chicago",
    "NYISO": "America/New_York",
    "ISONE": "America/New_York",
    "PJM": "America/New_York",
    "WECC_SW": "America/Phoenix",
}


def test_default_table_matches_contract() -> None:
    assert dict(DEFAULT_MARKET_TIMEZONES) == REGION_ZONES


def test_default_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT_MARKET_TIMEZONES["CAISO"] = "UTC"  # type: ignore[index]


@pytest.mark.parametrize(("region", "zone"), sorted(REGION_ZONES.items()))
def test_zone_for_each_region(region: str, zone: str) -> None:
    assert zone_for(region) == ZoneInfo(zone)


@pytest.mark.parametrize("region", [None, "", "MISO", "SPP", "NOPE"])
def test_zone_for_unknown_region_is_utc(region: str | None) -> None:
    assert zone_for(region) == ZoneInfo("UTC")


def test_zone_for_is_case_insensitive_for_table_regions() -> None:
    assert zone_for("caiso") == LA


def test_zone_for_uses_given_mapping() -> None:
    zones = {"CAISO": "America/Denver", "MISO": "America/Chicago"}
    assert zone_for("CAISO", zones) == ZoneInfo("America/Denver")
    assert zone_for("MISO", zones) == ZoneInfo("America/Chicago")
    assert zone_for("ERCOT", zones) == ZoneInfo("UTC")


# --- DST transitions ----------------------------------------------------------------------
# US DST 2024: spring forward Sun Mar 10, fall back Sun Nov 3.
# US DST 2025: spring forward Sun Mar 9, fall back Sun Nov 2.
# Clocks change at 02:00 local, so local midnight of the transition day still has the
# previous offset; the new offset first shows at the start of the day after.
# Standard / daylight UTC offsets: Pacific -8/-7, Central -6/-5, Eastern -5/-4,
# Arizona -7 all year.
# Each entry: (day before, day of, day after) -> UTC hour at which local midnight falls.

PACIFIC = {"spring": (8, 8, 7), "fall": (7, 7, 8)}
CENTRAL = {"spring": (6, 6, 5), "fall": (5, 5, 6)}
EASTERN = {"spring": (5, 5, 4), "fall": (4, 4, 5)}
ARIZONA = {"spring": (7, 7, 7), "fall": (7, 7, 7)}

HOURS_BY_ZONE = {
    "America/Los_Angeles": PACIFIC,
    "America/Chicago": CENTRAL,
    "America/New_York": EASTERN,
    "America/Phoenix": ARIZONA,
}

TRANSITIONS = {
    ("spring", 2024): date(2024, 3, 10),
    ("fall", 2024): date(2024, 11, 3),
    ("spring", 2025): date(2025, 3, 9),
    ("fall", 2025): date(2025, 11, 2),
}

DST_CASES = [
    pytest.param(
        region,
        TRANSITIONS[(kind, year)] + timedelta(days=offset),
        HOURS_BY_ZONE[zone][kind][offset + 1],
        id=f"{region}-{kind}{year}-{('before', 'of', 'after')[offset + 1]}",
    )
    for region, zone in sorted(REGION_ZONES.items())
    for (kind, year) in TRANSITIONS
    for offset in (-1, 0, 1)
]


@pytest.mark.parametrize(("region", "day", "utc_hour"), DST_CASES)
def test_trade_date_start_across_dst(region: str, day: date, utc_hour: int) -> None:
    tz = zone_for(region)
    start = trade_date_start(day, tz)
    assert start == utc(day.year, day.month, day.day, utc_hour)
    # And the start instant maps back to the same trade date.
    assert trade_date_of(start, tz) == day
    assert trade_date_of(start - timedelta(microseconds=1), tz) == day - timedelta(days=1)


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/Los_Angeles", date(2024, 3, 10), 23),
        ("America/Los_Angeles", date(2024, 11, 3), 25),
        ("America/Chicago", date(2025, 3, 9), 23),
        ("America/Chicago", date(2025, 11, 2), 25),
        ("America/New_York", date(2024, 3, 10), 23),
        ("America/New_York", date(2025, 11, 2), 25),
        ("America/Phoenix", date(2024, 3, 10), 24),
        ("America/Phoenix", date(2024, 11, 3), 24),
        ("America/Los_Angeles", date(2024, 6, 1), 24),
    ],
)
def test_trade_day_length(zone: str, day: date, hours: int) -> None:
    tz = ZoneInfo(zone)
    length = trade_date_start(day + timedelta(days=1), tz) - trade_date_start(day, tz)
    assert length == timedelta(hours=hours)


def test_phoenix_never_shifts() -> None:
    tz = zone_for("WECC_SW")
    for day in trade_date_range(date(2024, 1, 1), date(2024, 12, 31)):
        assert trade_date_start(day, tz) == utc(day.year, day.month, day.day, 7)


# --- trade_date_of / current / default ----------------------------------------------------


def test_trade_date_of_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        trade_date_of(datetime(2024, 6, 2, 6, 30), LA)


def test_trade_date_of_accepts_any_aware_offset() -> None:
    # 23:30 in UTC-07:00 on June 1 is 06:30Z June 2, still June 1 in Los Angeles.
    instant = datetime(2024, 6, 1, 23, 30, tzinfo=timezone(timedelta(hours=-7)))
    assert trade_date_of(instant, LA) == date(2024, 6, 1)
    assert trade_date_of(instant, ZoneInfo("America/New_York")) == date(2024, 6, 2)


def test_default_trade_dates_before_local_midnight() -> None:
    now = utc(2024, 6, 2, 6, 30)  # 23:30 PDT on June 1
    assert current_trade_date(LA, now) == date(2024, 6, 1)
    assert default_trade_dates(LA, now) == [date(2024, 6, 1), date(2024, 6, 2), date(2024, 6, 3)]


def test_default_trade_dates_at_local_midnight() -> None:
    now = utc(2024, 6, 2, 7)  # 00:00 PDT on June 2
    assert default_trade_dates(LA, now) == [date(2024, 6, 2), date(2024, 6, 3), date(2024, 6, 4)]
    assert current_trade_date(LA, now - timedelta(microseconds=1)) == date(2024, 6, 1)


def test_default_trade_dates_same_instant_differs_by_zone() -> None:
    now = utc(2024, 6, 2, 6, 30)
    assert default_trade_dates(ZoneInfo("America/New_York"), now)[0] == date(2024, 6, 2)
    assert default_trade_dates(ZoneInfo("UTC"), now)[0] == date(2024, 6, 2)
    assert default_trade_dates(LA, now)[0] == date(2024, 6, 1)


def test_default_trade_dates_cross_month_and_year() -> None:
    now = utc(2025, 1, 1, 7, 59)  # 23:59 PST on Dec 31, 2024
    assert default_trade_dates(LA, now) == [date(2024, 12, 31), date(2025, 1, 1), date(2025, 1, 2)]


def test_default_trade_dates_count() -> None:
    now = utc(2024, 6, 2, 12)
    assert default_trade_dates(LA, now, count=1) == [date(2024, 6, 2)]
    assert len(default_trade_dates(LA, now, count=7)) == 7
    with pytest.raises(ValueError, match="count"):
        default_trade_dates(LA, now, count=0)
    with pytest.raises(ValueError, match="count"):
        default_trade_dates(LA, now, count=367)


def test_default_trade_dates_without_now_uses_clock() -> None:
    before = current_trade_date(LA, datetime.now(UTC))
    dates = default_trade_dates(LA)
    after = current_trade_date(LA, datetime.now(UTC))
    assert len(dates) == 3
    assert dates[0] in (before, after)
    assert dates[1] == dates[0] + timedelta(days=1)
    assert dates[2] == dates[0] + timedelta(days=2)


# --- trade_date_range ---------------------------------------------------------------------


def test_trade_date_range_inclusive() -> None:
    assert trade_date_range(date(2024, 2, 28), date(2024, 3, 1)) == [
        date(2024, 2, 28),
        date(2024, 2, 29),
        date(2024, 3, 1),
    ]
    assert trade_date_range(date(2024, 6, 1), date(2024, 6, 1)) == [date(2024, 6, 1)]


def test_trade_date_range_rejects_reversed() -> None:
    with pytest.raises(ValueError, match="before start"):
        trade_date_range(date(2024, 6, 2), date(2024, 6, 1))


def test_trade_date_range_limit() -> None:
    # 2024 is a leap year: the whole year is exactly 366 days and allowed.
    assert len(trade_date_range(date(2024, 1, 1), date(2024, 12, 31))) == 366
    with pytest.raises(ValueError, match="367 days"):
        trade_date_range(date(2024, 1, 1), date(2025, 1, 1))


# --- covered days: Leap's two window ends -------------------------------------------------

NY = ZoneInfo("America/New_York")


def test_group_end_is_exclusive_may_example() -> None:
    # Leap's example: a May group, 2024-05-01T04:00Z to 2024-06-01T04:00Z, "the date when
    # this market group will become inactive": May 1 to May 31, not June 1.
    first, last = covered_days(utc(2024, 5, 1, 4), utc(2024, 6, 1, 4), NY, end_inclusive=False)
    assert (first, last) == (date(2024, 5, 1), date(2024, 5, 31))


def test_delivery_period_end_is_its_last_day_october_example() -> None:
    # Leap writes October's delivery period as ending 2024-10-31T07:00Z (Pacific): the
    # start of its last day, which is covered.
    first, last = covered_days(utc(2024, 10, 1, 7), utc(2024, 10, 31, 7), LA, end_inclusive=True)
    assert (first, last) == (date(2024, 10, 1), date(2024, 10, 31))


def test_window_starting_after_midnight_covers_from_the_next_day() -> None:
    # A day is covered when its start is inside the window.
    first, last = covered_days(utc(2024, 6, 1, 12), utc(2024, 6, 3, 7), LA, end_inclusive=False)
    assert (first, last) == (date(2024, 6, 2), date(2024, 6, 2))


def test_empty_window_covers_nothing() -> None:
    first, last = covered_days(utc(2024, 6, 1, 7), utc(2024, 6, 1, 7), LA, end_inclusive=False)
    assert first > last


def test_covered_days_never_overflow_at_the_edges() -> None:
    first, last = covered_days(
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, tzinfo=UTC),
        LA,
        end_inclusive=True,
    )
    assert first <= date(1, 1, 2)
    assert last >= date(9999, 12, 30)


def test_zone_starting_at_midnight_finds_the_market() -> None:
    zones = ["America/Los_Angeles", "America/Chicago", "America/New_York"]
    assert zone_starting_at_midnight(utc(2024, 5, 1, 4), zones) == "America/New_York"
    assert zone_starting_at_midnight(utc(2024, 10, 1, 7), zones) == "America/Los_Angeles"
    assert zone_starting_at_midnight(utc(2024, 10, 1, 9), zones) is None


# --- membership windows -------------------------------------------------------------------

MAY = UUID("00000000-0000-0000-0000-000000000005")
JUNE = UUID("00000000-0000-0000-0000-000000000006")


def month_window(group: UUID, first: date, last: date, seq: int = 0) -> MembershipWindow:
    return MembershipWindow(
        market_group_id=group,
        start=trade_date_start(first, LA),
        first_day=first,
        last_day=last,
        seq=seq,
    )


def test_window_covers_its_days_only() -> None:
    october = month_window(JUNE, date(2024, 10, 1), date(2024, 10, 31))
    assert window_for([october], date(2024, 10, 31)) is october
    assert window_for([october], date(2024, 11, 1)) is None
    assert window_for([october], date(2024, 9, 30)) is None


def test_latest_start_wins_where_windows_overlap() -> None:
    # An enrollment period ending on June 1 (its last day) overlaps June's group.
    may = month_window(MAY, date(2024, 5, 1), date(2024, 6, 1))
    june = month_window(JUNE, date(2024, 6, 1), date(2024, 6, 30))
    for windows in ([may, june], [june, may]):
        assert window_for(windows, date(2024, 5, 31)) is may
        assert window_for(windows, date(2024, 6, 1)) is june
        assert window_for(windows, date(2024, 6, 2)) is june


def test_latest_start_beats_higher_seq() -> None:
    long = month_window(MAY, date(2024, 1, 1), date(2024, 12, 31), seq=9)
    short = month_window(JUNE, date(2024, 6, 1), date(2024, 6, 30), seq=1)
    assert window_for([long, short], date(2024, 6, 15)) is short
    assert window_for([long, short], date(2024, 7, 1)) is long


def test_equal_start_higher_seq_wins() -> None:
    first = month_window(MAY, date(2024, 6, 1), date(2024, 6, 30), seq=1)
    second = month_window(JUNE, date(2024, 6, 1), date(2024, 6, 30), seq=2)
    assert window_for([first, second], date(2024, 6, 10)) is second
    assert window_for([second, first], date(2024, 6, 10)) is second


def test_equal_start_and_seq_later_in_input_wins() -> None:
    a = month_window(MAY, date(2024, 6, 1), date(2024, 6, 30))
    b = month_window(JUNE, date(2024, 6, 1), date(2024, 6, 30))
    assert window_for([a, b], date(2024, 6, 10)) is b
    assert window_for([b, a], date(2024, 6, 10)) is a


def test_no_window_is_none() -> None:
    assert window_for([], date(2024, 6, 1)) is None
    may = month_window(MAY, date(2024, 5, 1), date(2024, 5, 31))
    assert window_for([may], date(2024, 7, 1)) is None


def test_window_for_accepts_any_iterable() -> None:
    june = month_window(JUNE, date(2024, 6, 1), date(2024, 6, 30))
    assert window_for(iter([june]), date(2024, 6, 5)) is june


def test_covered_days_require_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        covered_days(datetime(2024, 6, 1), utc(2024, 6, 30), LA, end_inclusive=True)


# --- parse_market_timezones ---------------------------------------------------------------


def test_parse_overrides_merge_over_defaults() -> None:
    zones = parse_market_timezones("CAISO=America/Denver, MISO = America/Chicago")
    assert zones["CAISO"] == "America/Denver"
    assert zones["MISO"] == "America/Chicago"
    assert zones["PJM"] == "America/New_York"
    assert DEFAULT_MARKET_TIMEZONES["CAISO"] == "America/Los_Angeles"


def test_parse_example_from_brief() -> None:
    zones = parse_market_timezones("CAISO=America/Los_Angeles,ERCOT=America/Chicago")
    assert zones == REGION_ZONES


@pytest.mark.parametrize("text", ["", "   ", ",", " , ,"])
def test_parse_blank_gives_defaults(text: str) -> None:
    assert parse_market_timezones(text) == REGION_ZONES


def test_parse_upper_cases_region_and_allows_trailing_comma() -> None:
    zones = parse_market_timezones("miso=America/Chicago,")
    assert zones["MISO"] == "America/Chicago"
    assert zone_for("MISO", zones) == ZoneInfo("America/Chicago")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CAISO", "expected REGION=Area/City"),
        ("CAISO America/Los_Angeles", "expected REGION=Area/City"),
        ("=America/Chicago", "expected REGION=Area/City"),
        ("CAISO=", "expected REGION=Area/City"),
        ("CAISO:America/Los_Angeles", "expected REGION=Area/City"),
        ("CAISO=Mars/Olympus_Mons", "unknown IANA time zone 'Mars/Olympus_Mons'"),
        ("CAISO=america/los_angeles", "unknown IANA time zone"),
        ("CAISO=America", "unknown IANA time zone"),
        ("CAISO=/etc/passwd", "unknown IANA time zone"),
        ("CAISO=../zoneinfo/UTC", "unknown IANA time zone"),
        ("CAISO=PST", "unknown IANA time zone"),
        ("CAISO=America/Denver,caiso=America/Phoenix", "listed more than once"),
    ],
)
def test_parse_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_market_timezones(text)
    assert "\n" not in str(info.value)
