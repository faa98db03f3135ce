"""Leap's examples played by the fake Leap, delivered to the real receiver over HTTP with
Leap's sender, then reconciled from the fake's API: the service and the fake must agree
on what Leap means, end to end. (The fake's names are those of
test_fake_leap_follows_leap.py; the partner record's `linked_by` is test_partner_rules'.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.leap.client import LeapClient
from app.leap_sim.portfolio import Portfolio
from app.leap_sim.sender import Sender
from app.leap_sim.server import RunningSim, serve_in_thread
from app.leap_sim.state import EVENT_TYPES, SimState
from tests.leap_rules.leap_examples import run_reconciliation
from tests.leap_rules.rest import get, roster
from tests.support.live import LiveServer
from tests.support.settings import WEBHOOK_SECRET

KEY = "rules-e2e-sim-key"


@pytest.fixture
async def fake(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """The fake Leap, subscribed to the live service's receiver with its secret header."""
    state = SimState(
        Portfolio(300, 8, 3, anchor=datetime(2025, 6, 15, 12, tzinfo=UTC)),
        api_key=KEY,
        sender=Sender(time_factor=0.001),
    )
    running: RunningSim = serve_in_thread(state)
    headers = {"authorization": f"Bearer {KEY}"}
    try:
        async with httpx.AsyncClient(base_url=running.url, headers=headers, timeout=30) as sim:
            subscribed = await sim.post(
                "/v1.1/webhooks",
                json={
                    "event_types": list(EVENT_TYPES),
                    "headers": [{"name": "X-Webhook-Secret", "value": WEBHOOK_SECRET}],
                    "receiver_url": f"{live.url}/webhooks/leap",
                },
            )
            assert subscribed.status_code == 200, subscribed.text
            yield sim
    finally:
        await asyncio.to_thread(running.stop)


async def _delivered(sim: httpx.AsyncClient) -> None:
    drained = (await sim.post("/sim/drain?seconds=30")).json()
    assert drained["drained"] is True, drained
    deliveries = (await sim.get("/sim/deliveries")).json()["deliveries"]
    assert deliveries
    assert [d for d in deliveries if d["outcome"] != "delivered"] == []


async def test_may_group_from_fake_leap_ends_when_inactive(
    client: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    groups = (await fake.get("/sim/groups")).json()["groups"]
    group = next(g for g in groups if g["region"] == "NYISO")["market_group_id"]
    answer = await fake.put(
        f"/sim/groups/{group}/roster",
        json={
            "start_date_time": "2024-05-01T04:00:00Z",
            "end_date_time": "2024-06-01T04:00:00Z",
            "count": 3,
        },
    )
    assert answer.status_code == 200, answer.text
    members = sorted(answer.json()["meter_ids"])
    assert members
    await _delivered(fake)
    # Members never announced by meter.created: their day is the group's (New York).
    assert await roster(client, group, "2024-05-01") == members
    assert await roster(client, group, "2024-05-31") == members
    assert await roster(client, group, "2024-06-01") == []


async def test_authorization_chain_from_fake_leap_links_meter(
    client: httpx.AsyncClient, engine: AsyncEngine, fake: httpx.AsyncClient
) -> None:
    reference = "connect-ref-e2e"
    # Leap's chain: session, authorization INITIATED then COMPLETED, then meter.created.
    answer = await fake.post(
        "/sim/connect", json={"partner_reference": reference, "utility_name": "PGE", "meters": 2}
    )
    assert answer.status_code == 200, answer.text
    await _delivered(fake)
    emitted: list[dict[str, Any]] = [
        e["payload"] for e in (await fake.get("/sim/events")).json()["events"]
    ]
    created = {p["meter_id"] for p in emitted if p["webhook_event_type"] == "meter.created"}
    assert created
    run = await run_reconciliation(engine, LeapClient(str(fake.base_url), KEY, max_attempts=2))
    assert run.status == "succeeded", run.error
    partner = await get(client, f"/v1/partner-references/{reference}")
    assert partner["authorization_status"] == "COMPLETED"
    linked = {m["meter_id"] for m in partner["meters"] if "connection_reference" in m["linked_by"]}
    assert linked == created
