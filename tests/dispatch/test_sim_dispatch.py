"""The fake Leap's dispatch surface: shapes valid against dispatching.yml, Leap's retry
schedule, searches with paging and the 31-day limit, and the worker's search backstop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.routing import Route

from app import locks
from app.dispatch.backstop import (
    DispatchBackstop,
    poll_once,
    poll_windows,
)
from app.leap.dispatch_client import DispatchClient
from app.leap_sim.portfolio import Portfolio
from app.leap_sim.sender import Sender
from app.leap_sim.server import RunningSim, serve_in_thread
from app.leap_sim.state import SimState
from app.markets import DEFAULT_MARKET_TIMEZONES
from tests.dispatch.leap_dispatch import errors
from tests.support.db import scalar
from tests.support.live import LiveServer
from tests.support.sim import Receiver

SIM_KEY = "dispatch-contract-key"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    state = SimState(
        Portfolio(300, 8, 9, anchor=NOW - timedelta(days=30)),
        api_key=SIM_KEY,
        sender=Sender(time_factor=0.0005),
    )
    running = serve_in_thread(state)
    yield running
    running.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/hook", rec.handle, methods=["POST"])])
    with LiveServer(app, lifespan="off", log_level="warning") as server:
        rec.url = server.url + "/hook"
        yield rec


@pytest.fixture
async def leap(sim: RunningSim) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {SIM_KEY}"}
    async with httpx.AsyncClient(base_url=sim.url, headers=headers, timeout=60) as client:
        yield client


async def register(leap: httpx.AsyncClient, url: str) -> None:
    for kind in ("meter", "group"):
        body = {"url": url, "headers": [{"name": "x-key", "value": "k"}]}
        answer = await leap.put(f"/v2/dispatch/{kind}/webhook", json=body)
        assert answer.status_code == 200
        assert errors("Webhook", answer.json()) == []


async def drain(leap: httpx.AsyncClient) -> None:
    assert (await leap.post("/sim/dispatch/drain?seconds=60")).json()["drained"]


async def set_roster(leap: httpx.AsyncClient, count: int) -> str:
    groups = (await leap.get("/sim/groups")).json()["groups"]
    group_id = str(groups[0]["market_group_id"])
    window = {
        "start_date_time": (NOW - timedelta(days=5)).isoformat(),
        "end_date_time": (NOW + timedelta(days=20)).isoformat(),
        "count": count,
    }
    assert (await leap.put(f"/sim/groups/{group_id}/roster", json=window)).status_code == 200
    return group_id


async def test_registration_get_and_delete(leap: httpx.AsyncClient) -> None:
    assert (await leap.get("/v2/dispatch/group/webhook")).status_code == 404
    await register(leap, "https://partner.example.com/hook")
    got = await leap.get("/v2/dispatch/group/webhook")
    assert got.json()["url"] == "https://partner.example.com/hook"
    assert (await leap.delete("/v2/dispatch/group/webhook")).status_code == 204
    missing = await leap.get("/v2/dispatch/group/webhook")
    assert missing.status_code == 404
    assert errors("ErrorResponse", missing.json()) == []


async def test_sent_bodies_are_valid_for_leap_and_carry_headers(
    leap: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(leap, receiver.url)
    group_id = await set_roster(leap, 12)
    sent = await leap.post(f"/sim/dispatch/groups/{group_id}", json={"add": 1, "leave_out": 1})
    assert sent.status_code == 200
    meter = str(uuid.uuid4())
    assert (await leap.post("/sim/dispatch/meters", json={"meter_ids": [meter]})).status_code == 200
    comm = await leap.post(
        "/v2/dispatch/meter/communication_test",
        json={
            "start_time": NOW.isoformat(),
            "end_time": (NOW + timedelta(hours=1)).isoformat(),
            "program": "CEC-DSGS",
            "meter_uuids": [meter],
            "dispatch_quantity_kw": 5,
            "approved": True,
        },
    )
    assert comm.status_code == 201
    assert errors("CommunicationTestMeterDispatchResponse", comm.json()) == []
    await drain(leap)
    bodies = receiver.bodies()
    assert len(bodies) == 3
    for body in bodies:
        assert all(r.headers.get("x-key") == "k" for r in receiver.received)
        for item in body.get("group_dispatches", []):
            assert errors("WebhookMarketGroupDispatchEvent", item) == []
            assert len(item["meter_ids"]) == 12
        for item in body.get("meter_dispatches", []):
            assert errors("WebhookMeterDispatchEvent", item) == []
    assert bodies[2]["communication_test"] is True


async def test_integration_test_answer_shape(leap: httpx.AsyncClient, receiver: Receiver) -> None:
    await register(leap, receiver.url)
    body = {
        "meter_dispatches": [
            {
                "meter_id": str(uuid.uuid4()),
                "timeslots": [
                    {
                        "meter_event_id": str(uuid.uuid4()),
                        "start_time": "2026-07-21T00:00:00Z",
                        "end_time": "2026-07-21T01:00:00Z",
                        "energy_kw": 10,
                        "cancelled": False,
                        "programs": ["CCA"],
                        "priority": 1,
                        "is_voluntary": False,
                        "performance_compensation_cap": "up-to-nomination",
                        "dispatch_event_types": ["capacity-test"],
                    }
                ],
            }
        ]
    }
    answer = await leap.post("/v2/dispatch/meter/webhook/integration_test", json=body)
    assert answer.status_code == 200
    assert errors("WebhookIntegrationTestResponse", answer.json()) == []
    assert answer.json()["http_status"] == 202
    assert receiver.bodies()[0]["integration_test_notification"] is True


async def test_retried_every_minute_scaled_then_delivered(
    leap: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.reset(fail_times=3)
    await register(leap, receiver.url)
    await leap.post("/sim/dispatch/meters", json={"meter_ids": [str(uuid.uuid4())]})
    await drain(leap)
    [delivery] = (await leap.get("/sim/dispatch/deliveries")).json()["deliveries"]
    assert delivery["outcome"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 202]


async def test_dropped_after_fifty_attempts(leap: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.reset(fail_times=1000)
    await register(leap, receiver.url)
    await leap.post("/sim/dispatch/meters", json={"meter_ids": [str(uuid.uuid4())]})
    await drain(leap)
    [delivery] = (await leap.get("/sim/dispatch/deliveries")).json()["deliveries"]
    assert delivery["outcome"] == "dropped"
    assert len(delivery["attempts"]) == 50


async def test_search_pages_and_31_day_limit(leap: httpx.AsyncClient) -> None:
    meters = [str(uuid.uuid4()) for _ in range(620)]
    await leap.post("/sim/dispatch/meters", json={"meter_ids": meters})
    window = {"start_date": (NOW - timedelta(days=1)).isoformat()}
    too_long = await leap.post(
        "/v2/dispatch/meter/search",
        json={**window, "end_date": (NOW + timedelta(days=31)).isoformat()},
    )
    assert too_long.status_code == 400
    assert errors("ErrorResponse", too_long.json()) == []
    query: dict[str, Any] = {**window, "end_date": (NOW + timedelta(days=2)).isoformat()}
    seen: list[str] = []
    while True:
        page = (await leap.post("/v2/dispatch/meter/search", json=query)).json()
        assert errors("SearchMeterDispatchEventResponse", page) == []
        seen += [r["meter_id"] for r in page["results"]]
        if "next_page_token" not in page:
            break
        query["page_token"] = page["next_page_token"]
    assert sorted(seen) == sorted(meters)


async def test_backstop_poll_upserts_what_the_searches_return(
    leap: httpx.AsyncClient,
    sim: RunningSim,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # No webhook registered: the notifications are missed, only the searches have them.
    group_id = await set_roster(leap, 10)
    await leap.post(f"/sim/dispatch/groups/{group_id}", json={"add": 2})
    await leap.post("/sim/dispatch/meters", json={"meter_ids": [str(uuid.uuid4())]})
    # Outside yesterday..+2 days: not polled.
    late = (NOW + timedelta(days=10)).isoformat()
    await leap.post(
        "/sim/dispatch/meters", json={"meter_ids": [str(uuid.uuid4())], "start_time": late}
    )
    async with DispatchClient(sim.url, SIM_KEY) as client:
        written = await poll_once(sessions, client, zones=DEFAULT_MARKET_TIMEZONES, refresh=True)
    assert written == 2
    assert await scalar(engine, "SELECT count(*) FROM dispatches WHERE source = 'search'") == 2
    # Our roster is empty (no event reached us): every listed meter is Leap-only.
    assert await scalar(engine, "SELECT leap_only_count FROM dispatch_drifts") == 12
    # In API mode the meters concerned are queued for a refresh.
    assert await scalar(engine, "SELECT count(*) FROM jobs WHERE kind = 'refresh_meter'") == 12
    await asyncio.sleep(0)


def test_poll_windows_cover_yesterday_to_two_days_ahead() -> None:
    now = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
    assert poll_windows(now) == [
        (datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 13, tzinfo=UTC))
    ]


async def test_backstop_step_polls_when_due_and_one_worker_at_a_time(
    leap: httpx.AsyncClient,
    sim: RunningSim,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await leap.post("/sim/dispatch/meters", json={"meter_ids": [str(uuid.uuid4())]})
    async with DispatchClient(sim.url, SIM_KEY) as client:
        backstop = DispatchBackstop(
            engine, sessions, client, zones=DEFAULT_MARKET_TIMEZONES, interval_s=3600
        )
        async with engine.connect() as other:
            # Another worker holds the poll: this one skips.
            await other.execute(text("SELECT pg_advisory_lock(:id)"), {"id": locks.DISPATCH_POLL})
            await backstop.step()
            assert await scalar(engine, "SELECT count(*) FROM dispatches") == 0
            await other.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": locks.DISPATCH_POLL})
            await other.commit()
        backstop._next = 0.0  # due again
        await backstop.step()
        assert await scalar(engine, "SELECT count(*) FROM dispatches") == 1
        await leap.post("/sim/dispatch/meters", json={"meter_ids": [str(uuid.uuid4())]})
        await backstop.step()  # not due for an hour
        assert await scalar(engine, "SELECT count(*) FROM dispatches") == 1
