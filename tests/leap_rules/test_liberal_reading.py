"""Strict about the envelope, liberal about what Leap writes inside it: Leap's input
rules are not promises about its output. And no instant can be stored that a later
read cannot handle: those are 422 dead letters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.leap_rules.rest import get, instant, send, timeline
from tests.support import events
from tests.support.db import rows, scalar
from tests.support.http import deliver, ops_auth, read_auth
from tests.support.settings import WEBHOOK_SECRET

GROUP = "406720c2-0175-4137-9ff1-1641702292d4"
# Leap's own test-webhook example for meter.created: no transmission_region.
TEST_WEBHOOK_EXAMPLE = {
    "webhook_event_type": "meter.created",
    "meter_id": "364be407-1f08-48fa-afd2-ee1dd228b76b",
    "partner_reference": "sample-ref-123",
}


async def test_meter_created_without_region_accepted(client: httpx.AsyncClient) -> None:
    response = await deliver(client, events.body(TEST_WEBHOOK_EXAMPLE))
    assert response.status_code == 202, response.text
    meter = await get(client, "/v1/meters/364be407-1f08-48fa-afd2-ee1dd228b76b")
    assert meter["transmission_region"] is None  # unknown until the API says
    assert meter["partner_reference"] == "sample-ref-123"
    partner = await get(client, "/v1/partner-references/sample-ref-123")
    assert [m["meter_id"] for m in partner["meters"]] == [TEST_WEBHOOK_EXAMPLE["meter_id"]]


async def test_meter_created_without_region_keeps_known_region(
    client: httpx.AsyncClient,
) -> None:
    meter_id = TEST_WEBHOOK_EXAMPLE["meter_id"]
    await send(client, events.global_status(meter_id, "ELIGIBLE", region="ERCOT"))
    await send(client, TEST_WEBHOOK_EXAMPLE)
    meter = await get(client, f"/v1/meters/{meter_id}")
    assert meter["transmission_region"] == "ERCOT"
    assert meter["partner_reference"] == "sample-ref-123"


async def test_json_without_content_type_accepted(client: httpx.AsyncClient) -> None:
    content = events.body(events.meter_created())
    response = await client.post(
        "/webhooks/leap", content=content, headers={"X-Webhook-Secret": WEBHOOK_SECRET}
    )
    assert "content-type" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 202, response.text
    meter = await get(client, f"/v1/meters/{events.CAISO_METER}")
    assert meter["partner_reference"] == "customer-site-123"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
async def test_declared_non_json_type_still_415(
    client: httpx.AsyncClient, engine: AsyncEngine, content_type: str
) -> None:
    event_id = str(uuid.uuid4())
    response = await client.post(
        "/webhooks/leap",
        content=events.body(events.meter_created(), event_id),
        headers={"X-Webhook-Secret": WEBHOOK_SECRET, "Content-Type": content_type},
    )
    assert response.status_code == 415, response.text
    assert await scalar(engine, "SELECT count(*) FROM webhook_events") == 0
    assert await scalar(engine, "SELECT count(*) FROM meters") == 0


async def test_leap_far_future_sentinel_accepted(client: httpx.AsyncClient) -> None:
    # Leap's enrollment examples end open windows at 9000-12-31T23:59:59.999999999Z.
    await send(
        client,
        events.participation(
            preference="PARTICIPATE",
            start="2024-04-24T16:03:06Z",
            end="9000-12-31T23:59:59.999999999Z",
        ),
    )
    view = await get(client, f"/v1/meters/{events.CAISO_METER}/enrollment")
    [(preference, start, end)] = timeline(view)
    assert (preference, start) == ("PARTICIPATE", instant("2024-04-24T16:03:06Z"))
    assert end is not None
    assert end.year == 9000


def _group(start: str = "2024-05-01T04:00:00Z", end: str = "2024-06-01T04:00:00Z") -> Any:
    return events.group_updated([events.CAISO_METER], GROUP, "GRP1_NAME", start, end)


def _participation(start: str = "2024-11-01T07:00:00Z", end: str | None = None) -> Any:
    return events.participation(start=start, end=end)


def _deadline(when: str) -> Any:
    payload = events.required_actions()
    payload["required_actions"]["partner"][0]["enrollment_deadline_date_time"] = when
    return payload


EXTREME: list[Any] = [
    pytest.param(lambda: _group(start="0001-01-01T00:00:00Z"), id="group-start-year-1"),
    pytest.param(lambda: _group(end="9999-12-31T23:59:59-05:00"), id="group-end-9999-offset"),
    pytest.param(lambda: _group(start="-infinity", end="infinity"), id="group-infinity"),
    pytest.param(lambda: _participation(start="0001-01-01T00:00:00Z"), id="participation-year-1"),
    pytest.param(
        lambda: _participation(end="9999-12-31T23:59:59-05:00"), id="participation-end-9999-offset"
    ),
    pytest.param(
        lambda: _participation(start="0001-01-01T00:00:00+01:00"), id="participation-before-year-1"
    ),
    pytest.param(lambda: _deadline("9999-12-31T23:59:59-05:00"), id="action-deadline-9999-offset"),
    pytest.param(lambda: _deadline("infinity"), id="action-deadline-infinity"),
]


async def _stored(engine: AsyncEngine) -> list[Any]:
    """What the inventory holds, apart from the event log."""
    state: list[Any] = []
    for table in ("meters", "market_groups", "group_memberships", "partners", "partner_events"):
        state.append((table, await scalar(engine, f"SELECT count(*) FROM {table}")))
    state.append(
        await rows(
            engine,
            "SELECT meter_id, participation_preferences::text, required_actions::text,"
            " enrollment_status, updated_at FROM meters ORDER BY meter_id",
        )
    )
    return state


@pytest.mark.parametrize("make", EXTREME)
async def test_extreme_instants_are_dead_letters(
    client: httpx.AsyncClient, engine: AsyncEngine, make: Callable[[], dict[str, Any]]
) -> None:
    await send(client, events.meter_created())  # a known member, so reads touch its windows
    before = await _stored(engine)
    event_id = str(uuid.uuid4())
    response = await deliver(client, json.dumps(events.envelope(make(), event_id)).encode())
    reads = [
        "/v1/groups?trade_date=2024-05-15",
        f"/v1/groups/{GROUP}/meters?trade_date=2024-05-15",
        f"/v1/groups/{GROUP}/meters",
        f"/v1/meters?market_group_id={GROUP}&trade_date=2024-05-15",
        "/v1/meters",
        f"/v1/meters/{events.CAISO_METER}",
        f"/v1/meters/{events.CAISO_METER}/enrollment",
        f"/v1/meters/{events.CAISO_METER}/participation?from=2024-05-01&to=2024-06-30",
        f"/v1/meters/{events.CAISO_METER}/participation",
        "/v1/partner-references/customer-site-123",
    ]
    statuses = {url: (await client.get(url, headers=read_auth())).status_code for url in reads}
    assert {url: s for url, s in statuses.items() if s >= 500} == {}
    assert response.status_code == 422, response.text
    letter = await client.get(f"/v1/webhook-events/{event_id}", headers=ops_auth())
    assert letter.status_code == 200, letter.text
    assert letter.json()["status"] == "dead", letter.text
    dead = (await client.get("/v1/webhook-events?status=dead", headers=ops_auth())).json()
    assert event_id in json.dumps(dead)
    assert await _stored(engine) == before
