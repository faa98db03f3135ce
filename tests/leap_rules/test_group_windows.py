"""Rosters as Leap means them: a group's one window, its exclusive end, delivery periods'
inclusive ends, the day start of members not yet known, and "today" in the group's zone.

Each test sends what Leap's own examples send (group.updated for a May group:
`2024-05-01T04:00:00Z` -> `2024-06-01T04:00:00Z`, "the date when this market group will
become inactive"; delivery periods that end at the start of their last day) and reads
the REST answers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from app.markets import DEFAULT_MARKET_TIMEZONES
from tests.leap_rules import leap_examples as leap
from tests.leap_rules.rest import get, group_by_day, roster, send
from tests.support import events
from tests.support.live import LiveServer
from tests.support.settings import make_settings

pytestmark = pytest.mark.usefixtures("both_read_paths")

GROUP = "406720c2-0175-4137-9ff1-1641702292d4"
NOV_GROUP = "78e4e059-3326-49db-8781-b0d997b03a2a"
MAY_START, MAY_END = "2024-05-01T04:00:00Z", "2024-06-01T04:00:00Z"  # Leap's example
NY_METER = "8fa85f64-5717-4562-b3fc-2c963f66afa1"


async def test_group_end_is_exclusive_may_example(client: httpx.AsyncClient) -> None:
    await send(client, events.meter_created(NY_METER, "site-ny", region="NYISO"))
    await send(client, events.group_updated([NY_METER], GROUP, "GRP1_NAME", MAY_START, MAY_END))
    assert await roster(client, GROUP, "2024-05-01") == [NY_METER]
    assert await roster(client, GROUP, "2024-05-31") == [NY_METER]
    # June 1 starts at 04:00Z in New York: the instant the group becomes inactive.
    assert await roster(client, GROUP, "2024-06-01") == []
    days = await group_by_day(client, NY_METER, "2024-05-31", "2024-06-01")
    assert days == {"2024-05-31": GROUP, "2024-06-01": None}
    listed = await get(client, f"/v1/meters?market_group_id={GROUP}&trade_date=2024-06-01")
    assert listed["items"] == []
    groups = await get(client, "/v1/groups?trade_date=2024-06-01")
    assert [g for g in groups["items"] if g["market_group_id"] == GROUP] == []


async def test_group_update_shrinks_window(client: httpx.AsyncClient) -> None:
    await send(client, events.meter_created(NY_METER, "site-ny", region="NYISO"))
    await send(client, events.group_updated([NY_METER], GROUP, "GRP1_NAME", MAY_START, MAY_END))
    # Leap moves the group's end earlier: it becomes inactive on May 15.
    await send(
        client,
        events.group_updated([NY_METER], GROUP, "GRP1_NAME", MAY_START, "2024-05-15T04:00:00Z"),
    )
    assert await roster(client, GROUP, "2024-05-14") == [NY_METER]
    assert await roster(client, GROUP, "2024-05-15") == []
    assert await roster(client, GROUP, "2024-05-20") == []


async def test_group_has_one_window_latest_event_wins(client: httpx.AsyncClient) -> None:
    other = str(uuid.uuid4())
    await send(client, events.meter_created(NY_METER, "site-ny", region="NYISO"))
    await send(client, events.meter_created(other, "site-other", region="NYISO"))
    await send(client, events.group_updated([NY_METER], GROUP, "GRP1_NAME", MAY_START, MAY_END))
    # The same group, now for June and with another member: May's window is gone.
    await send(
        client,
        events.group_updated([other], GROUP, "GRP1_NAME", MAY_END, "2024-07-01T04:00:00Z"),
    )
    assert await roster(client, GROUP, "2024-05-15") == []
    assert await roster(client, GROUP, "2024-06-15") == [other]
    assert (await group_by_day(client, NY_METER, "2024-05-15", "2024-05-15")) == {
        "2024-05-15": None
    }


async def test_group_update_drops_member_from_program_enrollment_source(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    enrolled, newcomer = "2fa85f64-5717-4562-b3fc-2c963f66afa6", str(uuid.uuid4())
    oct_cca = leap.program(
        "CAISO-CCA_2024_OCT",
        "2024-10-01T07:00:00Z",
        "2024-10-31T07:00:00Z",
        market_group_id=GROUP,
        market_group_name="PGSB_1_PDRP68",
    )
    example = leap.ExampleLeap(
        meters=[leap.meter_details(enrolled, "ref-id-0102")],
        enrollments=[leap.enrollment(enrolled, [oct_cca], partner_reference="ref-id-0102")],
    )
    assert (await leap.reconcile(engine, example)).status == "succeeded"
    assert await roster(client, GROUP, "2024-10-15") == [enrolled]
    # Leap's word about the group: its members are now only `newcomer`.
    await send(
        client,
        events.group_updated(
            [newcomer], GROUP, "PGSB_1_PDRP68", "2024-10-01T07:00:00Z", "2024-11-01T07:00:00Z"
        ),
    )
    assert await roster(client, GROUP, "2024-10-15") == [newcomer]
    days = await group_by_day(client, enrolled, "2024-10-15", "2024-10-15")
    assert days == {"2024-10-15": None}


async def test_unknown_member_takes_day_start_from_group_window(
    client: httpx.AsyncClient,
) -> None:
    unknown = str(uuid.uuid4())  # never announced: common in webhook-only mode
    await send(
        client,
        events.group_updated(
            [unknown], GROUP, "PGSB_1_PDRP68", "2024-10-01T07:00:00Z", "2024-11-01T07:00:00Z"
        ),
    )
    # The window starts at local midnight in Los Angeles: so do the group's trade dates.
    assert await roster(client, GROUP, "2024-10-01") == [unknown]
    assert await roster(client, GROUP, "2024-10-31") == [unknown]
    assert await roster(client, GROUP, "2024-11-01") == []


async def test_member_without_region_takes_day_start_from_group_window(
    client: httpx.AsyncClient,
) -> None:
    # Leap's own test-webhook example: a meter.created without transmission_region.
    meter = "364be407-1f08-48fa-afd2-ee1dd228b76b"
    payload = {"webhook_event_type": "meter.created", "meter_id": meter}
    payload["partner_reference"] = "sample-ref-123"
    await send(client, payload)
    await send(
        client,
        events.group_updated(
            [meter], GROUP, "PGSB_1_PDRP68", "2024-10-01T07:00:00Z", "2024-11-01T07:00:00Z"
        ),
    )
    assert await roster(client, GROUP, "2024-10-01") == [meter]
    assert await roster(client, GROUP, "2024-11-01") == []


async def test_default_roster_date_is_today_in_group_zone(database_url: str) -> None:
    # The code offers no clock to set, so the market's zone is chosen (MARKET_TIMEZONES)
    # so that its calendar day differs from UTC's right now, far from its midnight.
    now = datetime.now(UTC)
    zone_name = "Etc/GMT-14" if now.hour >= 11 else "Etc/GMT+12"  # UTC+14 / UTC-12
    zone = ZoneInfo(zone_name)
    today = now.astimezone(zone).date()
    assert today != now.date()
    zones = {**DEFAULT_MARKET_TIMEZONES, "CAISO": zone_name}
    settings = make_settings(database_url, market_timezones=zones)
    start = datetime.combine(today, time(0), tzinfo=zone).astimezone(UTC)
    end = start + timedelta(days=1)  # a one-day group: only "today" has members
    iso = "%Y-%m-%dT%H:%M:%SZ"
    one_day = events.group_updated(
        [events.CAISO_METER], GROUP, "ONE_DAY", start.strftime(iso), end.strftime(iso)
    )
    async with (
        LiveServer(create_app(settings)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=30) as client,
    ):
        await send(client, events.meter_created(events.CAISO_METER, "site-1"))
        await send(client, one_day)
        page = await get(client, f"/v1/groups/{GROUP}/meters")
    assert page["trade_date"] == today.isoformat()
    assert [m["meter_id"] for m in page["items"]] == [events.CAISO_METER]


async def test_delivery_period_end_is_inclusive_october_example(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    meter = "2fa85f64-5717-4562-b3fc-2c963f66afa6"
    programs = [  # Leap's "multiple enrollments" example, CCA periods
        leap.program(
            "CAISO-CCA_2024_OCT",
            "2024-10-01T07:00:00Z",
            "2024-10-31T07:00:00Z",
            market_group_id=GROUP,
            market_group_name="PGSB_1_PDRP68",
        ),
        leap.program(
            "CAISO-CCA_2024_NOV",
            "2024-11-01T07:00:00Z",
            "2024-11-30T08:00:00Z",
            market_group_id=NOV_GROUP,
            market_group_name="PGSB_1_PDRP92",
        ),
        leap.program("CAISO-CCA_2024_DEC", "2024-12-01T08:00:00Z", "2024-12-31T08:00:00Z"),
    ]
    example = leap.ExampleLeap(
        meters=[leap.meter_details(meter, "ref-id-0102")],
        enrollments=[leap.enrollment(meter, programs, partner_reference="ref-id-0102")],
    )
    assert (await leap.reconcile(engine, example)).status == "succeeded"
    days = await group_by_day(client, meter, "2024-10-30", "2024-12-01")
    assert days["2024-10-31"] == GROUP  # October's last day is October's
    assert days["2024-11-01"] == NOV_GROUP
    assert days["2024-11-30"] == NOV_GROUP
    assert days["2024-12-01"] is None
    assert await roster(client, GROUP, "2024-10-31") == [meter]
    assert await roster(client, GROUP, "2024-11-01") == []


async def test_multi_month_period_covers_its_last_day(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    scr = leap.program(  # NYISO-SCR_2024_MAY_OCT, as in Leap's enrollment search example
        "NYISO-SCR_2024_MAY_OCT",
        "2024-05-01T04:00:00Z",
        "2024-10-31T04:00:00Z",
        program_identifier="NYISO-SCR",
        market_group_id=GROUP,
        market_group_name="SCR_GROUP",
    )
    example = leap.ExampleLeap(
        meters=[leap.meter_details(NY_METER, "test_meter", "NYISO")],
        enrollments=[
            leap.enrollment(NY_METER, [scr], partner_reference="test_meter", region="NYISO")
        ],
    )
    assert (await leap.reconcile(engine, example)).status == "succeeded"
    assert await roster(client, GROUP, "2024-05-01") == [NY_METER]
    assert await roster(client, GROUP, "2024-10-31") == [NY_METER]
    assert await roster(client, GROUP, "2024-11-01") == []
