"""GET /v1/dispatches and friends: filters, paging, partner lookups, trade dates, 100k."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dispatch.bodies import encode, group_body, meter_body, timeslot
from tests.support import events
from tests.support.db import scalar
from tests.support.http import deliver, read_auth, secret_headers

GROUP = "406720c2-0175-4137-9ff1-1641702292d4"  # events.group_updated's default group
# October 2024 group window (CAISO local midnight to the instant it becomes inactive).
WINDOW = {"start": "2024-10-01T07:00:00Z", "end": "2024-11-01T07:00:00Z"}


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(
        "/webhooks/leap/dispatch", content=encode(body), headers=secret_headers()
    )
    assert response.status_code == 202, response.text


async def get(client: httpx.AsyncClient, url: str) -> Any:
    response = await client.get(url, headers=read_auth())
    assert response.status_code == 200, response.text
    return response.json()


async def meter(client: httpx.AsyncClient, reference: str, region: str = "CAISO") -> str:
    meter_id = str(uuid.uuid4())
    created = events.meter_created(meter_id, partner_reference=reference, region=region)
    assert (await deliver(client, events.body(created))).status_code == 202
    return meter_id


async def test_filters_by_time_group_meter_and_reference(client: httpx.AsyncClient) -> None:
    mine = await meter(client, "site-a")
    other = await meter(client, "site-b")
    group_slot = timeslot(
        "market_group_event_id",
        uuid.uuid4(),
        start_time="2024-10-10T18:00:00Z",
        end_time="2024-10-10T20:00:00Z",
    )
    await post(client, group_body(GROUP, [mine, other], [group_slot]))
    meter_event = uuid.uuid4()
    late = timeslot(
        "meter_event_id",
        meter_event,
        start_time="2024-10-12T18:00:00Z",
        end_time="2024-10-12T19:00:00Z",
    )
    await post(client, meter_body(other, [late]))

    everything = await get(client, "/v1/dispatches")
    assert [i["kind"] for i in everything["items"]] == ["group", "meter"]
    overlap = await get(
        client, "/v1/dispatches?start=2024-10-10T19:00:00Z&end=2024-10-11T00:00:00Z"
    )
    assert [i["kind"] for i in overlap["items"]] == ["group"]
    # [start, end): a timeslot ending exactly at start does not overlap.
    after = await get(client, "/v1/dispatches?start=2024-10-10T20:00:00Z")
    assert [i["kind"] for i in after["items"]] == ["meter"]
    by_group = await get(client, f"/v1/dispatches?market_group_id={GROUP}")
    assert [i["kind"] for i in by_group["items"]] == ["group"]
    by_meter = await get(client, f"/v1/dispatches?meter_id={other}")
    assert [i["kind"] for i in by_meter["items"]] == ["group", "meter"]
    assert by_meter["items"][1]["meter_id"] == other
    by_reference = await get(client, "/v1/dispatches?partner_reference=site-a")
    assert [i["kind"] for i in by_reference["items"]] == ["group"]

    partner = await get(client, "/v1/partner-references/site-b/dispatches")
    assert partner["partner_reference"] == "site-b"
    assert [i["dispatch_event_id"] for i in partner["items"]][1] == str(meter_event)
    none = await get(client, "/v1/partner-references/site-zzz/dispatches")
    assert none["items"] == []

    meters = await get(client, f"/v1/dispatches/{group_slot['market_group_event_id']}/meters")
    assert {(m["meter_id"], m["partner_reference"]) for m in meters["items"]} == {
        (mine, "site-a"),
        (other, "site-b"),
    }


async def test_cursor_walks_every_timeslot_once(client: httpx.AsyncClient) -> None:
    slots = [
        timeslot(
            "meter_event_id",
            uuid.uuid4(),
            start_time=f"2024-10-{day:02d}T18:00:00Z",
            end_time=f"2024-10-{day:02d}T19:00:00Z",
        )
        for day in range(1, 8)
    ]
    await post(client, meter_body(uuid.uuid4(), slots))
    seen: list[str] = []
    url = "/v1/dispatches?limit=3"
    while True:
        page = await get(client, url)
        seen += [i["dispatch_event_id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"/v1/dispatches?limit=3&cursor={page['next_cursor']}"
    assert seen == [s["meter_event_id"] for s in slots]


@pytest.mark.parametrize(
    "query",
    [
        "cursor=not-a-cursor",
        "start=2024-10-10T19:00:00",
        "start=2024-10-10T19:00:00Z&end=2024-10-01T00:00:00Z",
        "include_tests=yes",
        "limit=0",
        "meter_id=nope",
    ],
)
async def test_bad_parameters_are_422(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/v1/dispatches?{query}", headers=read_auth())
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_dispatch_is_404_and_auth_is_required(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/v1/dispatches/{uuid.uuid4()}", headers=read_auth())
    assert missing.status_code == 404
    assert (await client.get("/v1/dispatches")).status_code == 401


async def test_trade_date_in_market_zone(client: httpx.AsyncClient) -> None:
    known = await meter(client, "site-ny", region="NYISO")
    # 02:00Z is still the previous day in New York (and in UTC it would be the next).
    slot = timeslot(
        "meter_event_id",
        uuid.uuid4(),
        start_time="2024-10-11T02:00:00Z",
        end_time="2024-10-11T03:00:00Z",
    )
    await post(client, meter_body(known, [slot]))
    [item] = (await get(client, "/v1/dispatches"))["items"]
    assert item["trade_date"] == "2024-10-10"
    assert item["trade_date_start"] == "2024-10-10T04:00:00Z"


async def test_group_without_known_member_takes_the_zone_its_window_implies(
    client: httpx.AsyncClient,
) -> None:
    strangers = [str(uuid.uuid4()) for _ in range(3)]
    roster = events.group_updated(strangers, start=WINDOW["start"], end=WINDOW["end"])
    assert (await deliver(client, events.body(roster))).status_code == 202
    slot = timeslot(
        "market_group_event_id",
        uuid.uuid4(),
        start_time="2024-10-11T02:00:00Z",
        end_time="2024-10-11T03:00:00Z",
    )
    await post(client, group_body(GROUP, strangers, [slot]))
    [item] = (await get(client, "/v1/dispatches"))["items"]
    # The window starts at 07:00Z, Los Angeles midnight: 02:00Z is October 10 there.
    assert item["trade_date"] == "2024-10-10"
    detail = await get(client, f"/v1/dispatches/{slot['market_group_event_id']}")
    assert detail["drift"]["leap_only_count"] == 0
    assert detail["drift"]["local_only_count"] == 0


async def test_hundred_thousand_meter_group_dispatch_in_one_request(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    members = sorted(str(uuid.uuid4()) for _ in range(100_000))
    roster = events.group_updated(members, start=WINDOW["start"], end=WINDOW["end"])
    assert (await deliver(client, events.body(roster))).status_code == 202
    stranger = str(uuid.uuid4())
    listed = [*members[1:], stranger]  # one member left out, one stranger added
    slots = [
        timeslot("market_group_event_id", uuid.uuid4(), start_time=f"2024-10-1{h}T18:00:00Z",
                 end_time=f"2024-10-1{h}T19:00:00Z")
        for h in range(2)
    ]  # fmt: skip
    body = group_body(GROUP, listed, slots)
    assert len(encode(body)) > 3_000_000
    await post(client, body)
    # Both timeslots share one stored list of 100k ids.
    assert await scalar(engine, "SELECT count(*) FROM dispatch_set_meters") == 100_000
    detail = await get(client, f"/v1/dispatches/{slots[0]['market_group_event_id']}")
    assert detail["meter_count"] == 100_000
    assert detail["drift"]["leap_only"] == [stranger]
    assert detail["drift"]["local_only"] == [members[0]]
    page = await get(
        client, f"/v1/dispatches/{slots[1]['market_group_event_id']}/meters?limit=100000"
    )
    assert len(page["items"]) == 100_000


async def test_cancelling_a_drifting_timeslot_clears_its_drift(client: httpx.AsyncClient) -> None:
    event_id = uuid.uuid4()
    stranger = str(uuid.uuid4())
    await post(client, group_body(GROUP, [stranger], [timeslot("market_group_event_id", event_id)]))
    drifting = await get(client, f"/v1/dispatches/{event_id}")
    assert drifting["drift"]["leap_only"] == [stranger]
    cancelled = timeslot("market_group_event_id", event_id, cancelled=True)
    await post(client, group_body(GROUP, [stranger], [cancelled]))
    detail = await get(client, f"/v1/dispatches/{event_id}")
    assert detail["cancelled"] is True
    assert detail["drift"] is None
    status = await get(client, "/v1/sync/status")
    assert status["dispatch"]["drift_24h"] == 0
