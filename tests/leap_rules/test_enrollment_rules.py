"""The enrollment view and membership sources as Leap means them: only ACTIVE program
enrollments make members, required-actions events carry only the partner side, a
delivery period is in force through its last local day, participation windows follow
Leap's override rules, and one instant is one window whatever its spelling.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.leap_rules import leap_examples as leap
from tests.leap_rules.rest import get, group_by_day, instant, send, timeline
from tests.support import events
from tests.support.http import read_auth

pytestmark = pytest.mark.usefixtures("both_read_paths")

METER = "2fa85f64-5717-4562-b3fc-2c963f66afa6"  # Leap's "multiple enrollments" example
NY_METER = "11111111-1111-1111-1111-111111111111"  # Leap's enrollment search example
ELIGIBLE_GROUP = "891b8c8b-6315-4ea3-8675-5337963c5757"


def _view(client: httpx.AsyncClient, meter: str) -> Any:
    return get(client, f"/v1/meters/{meter}/enrollment")


async def test_eligible_enrollment_not_in_roster_but_in_enrollment_view(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    dlrp_2025 = leap.program(  # ELIGIBLE, yet carrying its market group (Leap's example)
        "CONED-DLRP_2025_MAY_SEP",
        "2025-05-01T04:00:00Z",
        "2025-09-30T04:00:00Z",
        "ELIGIBLE",
        program_identifier="CONED-DLRP",
        market_group_id=ELIGIBLE_GROUP,
        market_group_name="PGSB_1_PDRP93",
    )
    year = datetime.now(UTC).year + 1  # the same period a year ahead: it follows today
    dlrp_next = {
        **dlrp_2025,
        "delivery_period": f"CONED-DLRP_{year}_MAY_SEP",
        "delivery_period_start_date_time": f"{year}-05-01T04:00:00Z",
        "delivery_period_end_date_time": f"{year}-09-30T04:00:00Z",
    }
    example = leap.ExampleLeap(
        meters=[leap.meter_details(NY_METER, "test_meter", "NYISO")],
        enrollments=[
            leap.enrollment(
                NY_METER,
                [dlrp_2025, dlrp_next],
                partner_reference="test_meter",
                region="NYISO",
                status="ELIGIBLE",
            )
        ],
    )
    assert (await leap.reconcile(engine, example)).status == "succeeded"
    assert await group_by_day(client, NY_METER, "2025-06-15", "2025-06-15") == {"2025-06-15": None}
    answer = await client.get(
        f"/v1/groups/{ELIGIBLE_GROUP}/meters?trade_date=2025-06-15", headers=read_auth()
    )
    assert answer.status_code == 404 or answer.json()["items"] == [], answer.text
    view = await _view(client, NY_METER)
    assert view["active_from"] is None
    assert view["active_to"] is None
    assert instant(view["eligible_from"]) == instant(f"{year}-05-01T04:00:00Z")
    assert view["eligible_to"] is not None
    shown = {
        (p["delivery_period"], p["enrollment_status"], p["market_group_id"])
        for p in view["programs"]
    }
    assert (f"CONED-DLRP_{year}_MAY_SEP", "ELIGIBLE", ELIGIBLE_GROUP) in shown


async def _enrolled_with_both_sides(engine: AsyncEngine) -> None:
    record = leap.enrollment(
        METER,
        [leap.program("CAISO-CCA_2024_NOV", "2024-11-01T07:00:00Z", "2024-11-30T08:00:00Z")],
        partner_reference="ref-id-0102",
        partner_actions=[leap.PARTNER_REAUTHORIZE],
        leap_actions=[leap.LEAP_NOT_ENROLLED],
    )
    example = leap.ExampleLeap(
        meters=[leap.meter_details(METER, "ref-id-0102")], enrollments=[record]
    )
    assert (await leap.reconcile(engine, example)).status == "succeeded"


def _actions_event(partner: list[dict[str, Any]] | None) -> dict[str, Any]:
    payload = events.required_actions(METER)
    payload["required_actions"] = {} if partner is None else {"partner": partner}
    return payload


async def test_required_actions_event_keeps_leap_side(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _enrolled_with_both_sides(engine)
    missing_fields = leap.action(
        "Partner needs configuration for fields: Voltage Group, CBL Method, Load Zone.",
        "SERV_0005",
        "NO_MISSING_FIELDS",
        "CAISO-CCA_2024_NOV",
    )
    await send(client, _actions_event([missing_fields]))
    view = await _view(client, METER)
    assert [a["action_code"] for a in view["required_actions"]["partner"]] == ["SERV_0005"]
    assert [a["action_code"] for a in view["required_actions"]["leap"]] == ["LEAP_0001"]
    assert sorted(view["status_reasons"]) == sorted(
        [missing_fields["action_description"], leap.LEAP_NOT_ENROLLED["action_description"]]
    )


async def test_required_actions_final_empty_event_clears_partner_side_only(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _enrolled_with_both_sides(engine)
    await send(client, _actions_event(None))  # "every partner action resolved"
    view = await _view(client, METER)
    assert view["required_actions"].get("partner", []) == []
    assert [a["action_code"] for a in view["required_actions"]["leap"]] == ["LEAP_0001"]
    assert view["status_reasons"] == [leap.LEAP_NOT_ENROLLED["action_description"]]


async def test_active_span_includes_last_day_of_period(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # A CAISO period whose last day is today in Los Angeles: Leap writes its end as the
    # start of today, an instant already past, yet the period is in force all day.
    la = ZoneInfo("America/Los_Angeles")
    today = datetime.now(UTC).astimezone(la).date()
    last_day_start = datetime.combine(today, time(0), tzinfo=la).astimezone(UTC)
    first_day_start = datetime.combine(today - timedelta(days=29), time(0), tzinfo=la)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    period = leap.program(
        "CAISO-CCA_THIS_MONTH",
        first_day_start.astimezone(UTC).strftime(iso),
        last_day_start.strftime(iso),
    )
    example = leap.ExampleLeap(
        meters=[leap.meter_details(METER, "ref-id-0102")],
        enrollments=[leap.enrollment(METER, [period], partner_reference="ref-id-0102")],
    )
    assert (await leap.reconcile(engine, example)).status == "succeeded"
    view = await _view(client, METER)
    assert instant(view["active_from"]) == first_day_start
    active_to = instant(view["active_to"])
    assert active_to is not None
    assert active_to >= last_day_start
    meter = await get(client, f"/v1/meters/{METER}")
    assert instant(meter["enrollment"]["active_from"]) == first_day_start


async def _participation(
    client: httpx.AsyncClient, preference: str, start: str, end: str | None
) -> None:
    await send(client, events.participation(events.CAISO_METER, preference, start, end))


async def test_participation_later_window_ends_open_ended_earlier(
    client: httpx.AsyncClient,
) -> None:
    await _participation(client, "DISENROLL", "2025-06-01T07:00:00Z", None)
    await _participation(client, "PARTICIPATE", "2025-07-01T07:00:00Z", None)
    view = await _view(client, events.CAISO_METER)
    assert timeline(view) == [
        ("DISENROLL", instant("2025-06-01T07:00:00Z"), instant("2025-07-01T07:00:00Z")),
        ("PARTICIPATE", instant("2025-07-01T07:00:00Z"), None),
    ]


async def test_participate_overrides_idle_and_disenroll(client: httpx.AsyncClient) -> None:
    await _participation(client, "IDLE", "2024-11-01T07:00:00Z", "2024-12-01T08:00:00Z")
    await _participation(client, "PARTICIPATE", "2024-11-15T08:00:00Z", None)
    assert timeline(await _view(client, events.CAISO_METER)) == [
        ("IDLE", instant("2024-11-01T07:00:00Z"), instant("2024-11-15T08:00:00Z")),
        ("PARTICIPATE", instant("2024-11-15T08:00:00Z"), None),
    ]
    other = "33333333-3333-3333-3333-333333333333"
    await send(
        client,
        events.participation(other, "DISENROLL", "2025-01-01T08:00:00Z", "2025-03-01T08:00:00Z"),
    )
    await send(client, events.participation(other, "PARTICIPATE", "2025-02-01T08:00:00Z", None))
    assert timeline(await _view(client, other)) == [
        ("DISENROLL", instant("2025-01-01T08:00:00Z"), instant("2025-02-01T08:00:00Z")),
        ("PARTICIPATE", instant("2025-02-01T08:00:00Z"), None),
    ]


async def test_new_idle_overrides_overlapped_disenroll(client: httpx.AsyncClient) -> None:
    await _participation(client, "DISENROLL", "2024-11-01T07:00:00Z", "2024-12-01T08:00:00Z")
    await _participation(client, "IDLE", "2024-11-15T08:00:00Z", "2024-12-15T08:00:00Z")
    assert timeline(await _view(client, events.CAISO_METER)) == [
        ("DISENROLL", instant("2024-11-01T07:00:00Z"), instant("2024-11-15T08:00:00Z")),
        ("IDLE", instant("2024-11-15T08:00:00Z"), instant("2024-12-15T08:00:00Z")),
    ]


async def test_same_instant_different_spelling_one_window(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Leap's API writes the window with `Z`; a webhook for the same window with +00:00
    # and a fraction: still one window.
    example = leap.ExampleLeap(
        meters=[leap.meter_details(METER, "ref-id-0102")],
        enrollments=[leap.enrollment(METER, [], partner_reference="ref-id-0102")],
    )
    assert (await leap.reconcile(engine, example)).status == "succeeded"
    payload = events.participation(
        METER, "PARTICIPATE", "2024-07-12T16:40:56.000+00:00", "9000-01-01T00:00:00+00:00"
    )
    await send(client, payload)
    view = await _view(client, METER)
    assert timeline(view) == [
        ("PARTICIPATE", instant("2024-07-12T16:40:56Z"), instant("9000-01-01T00:00:00Z"))
    ]


async def test_same_instant_different_spelling_in_webhooks_one_window(
    client: httpx.AsyncClient,
) -> None:
    for start in (
        "2024-11-01T07:00:00Z",
        "2024-11-01T07:00:00.000+00:00",
        "2024-10-31T23:00:00-08:00",
    ):
        await _participation(client, "IDLE", start, "2024-12-01T08:00:00Z")
    assert timeline(await _view(client, events.CAISO_METER)) == [
        ("IDLE", instant("2024-11-01T07:00:00Z"), instant("2024-12-01T08:00:00Z"))
    ]
