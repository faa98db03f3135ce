"""The fake Leap dispatches a group with a drift of k meters; the service reports exactly
those k: the warning line, the metrics, the REST answer and the sync status."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.leap_sim.portfolio import Portfolio
from app.leap_sim.sender import Sender
from app.leap_sim.server import RunningSim, serve_in_thread
from app.leap_sim.state import EVENT_TYPES, SimState, Subscription
from tests.support.http import read_auth
from tests.support.live import LiveServer
from tests.support.settings import WEBHOOK_SECRET
from tests.support.wait import eventually

SIM_KEY = "dispatch-sim-key"
ANCHOR = datetime(2026, 6, 15, 12, tzinfo=UTC)
# A July window for a CAISO group: local midnight in Los Angeles, ending when inactive.
WINDOW = {"start_date_time": "2026-07-01T07:00:00Z", "end_date_time": "2026-08-01T07:00:00Z"}
SLOT_START = "2026-07-21T19:00:00Z"


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    state = SimState(
        Portfolio(400, 8, 5, anchor=ANCHOR), api_key=SIM_KEY, sender=Sender(time_factor=0.001)
    )
    running = serve_in_thread(state)
    yield running
    running.stop()


@pytest.fixture
async def leap(sim: RunningSim, live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """The fake Leap, subscribed to our event receiver and both dispatch webhooks."""
    secret = [{"name": "X-Webhook-Secret", "value": WEBHOOK_SECRET}]
    sim.state.webhooks["w1"] = Subscription(
        "w1", list(EVENT_TYPES), secret, f"{live.url}/webhooks/leap"
    )
    headers = {"authorization": f"Bearer {SIM_KEY}"}
    async with httpx.AsyncClient(base_url=sim.url, headers=headers, timeout=60) as client:
        for kind in ("meter", "group"):
            registered = await client.put(
                f"/v2/dispatch/{kind}/webhook",
                json={"url": f"{live.url}/webhooks/leap/dispatch", "headers": secret},
            )
            assert registered.status_code == 200
        yield client


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def caiso_group(leap: httpx.AsyncClient) -> str:
    groups = (await leap.get("/sim/groups")).json()["groups"]
    return str(next(g["market_group_id"] for g in groups if g["region"] == "CAISO"))


async def test_injected_drift_is_reported_exactly(
    leap: httpx.AsyncClient, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    group_id = await caiso_group(leap)
    roster = await leap.put(f"/sim/groups/{group_id}/roster", json={**WINDOW, "count": 30})
    members = roster.json()["meter_ids"]
    assert len(members) == 30
    assert (await leap.post("/sim/drain?seconds=30")).json()["drained"]
    before = (await client.get("/metrics")).text
    with caplog.at_level(logging.WARNING, logger="meter_sync.dispatch"):
        sent = await leap.post(
            f"/sim/dispatch/groups/{group_id}",
            json={"start_time": SLOT_START, "add": 3, "leave_out": 2},
        )
        assert sent.status_code == 200, sent.text
        assert (await leap.post("/sim/dispatch/drain?seconds=30")).json()["drained"]
    injected = sent.json()
    assert len(injected["added"]) == 3
    assert len(injected["left_out"]) == 2
    event_id = injected["market_group_event_id"]

    detail = (await client.get(f"/v1/dispatches/{event_id}", headers=read_auth())).json()
    assert detail["trade_date"] == "2026-07-21"
    assert detail["drift"]["leap_only"] == sorted(injected["added"])
    assert detail["drift"]["local_only"] == sorted(injected["left_out"])
    assert (detail["drift"]["leap_only_count"], detail["drift"]["local_only_count"]) == (3, 2)

    [line] = [r for r in caplog.records if r.getMessage() == "dispatch drift"]
    assert line.levelno == logging.WARNING
    assert (line.leap_only_count, line.local_only_count) == (3, 2)  # type: ignore[attr-defined]
    assert sorted(line.leap_only) == sorted(injected["added"])  # type: ignore[attr-defined]

    after = (await client.get("/metrics")).text
    total = "meter_sync_dispatch_drift_total"
    assert metric(after, total) - metric(before, total) == 1
    assert metric(after, "meter_sync_dispatch_drift_meters") == 5

    status = (await client.get("/v1/sync/status", headers=read_auth())).json()["dispatch"]
    assert status["drift_24h"] == 1
    assert status["last_drift"]["dispatch_event_id"] == event_id
    assert (status["last_drift"]["leap_only_count"], status["last_drift"]["local_only_count"]) == (
        3,
        2,
    )
    assert status["last_received_at"] is not None

    meters = (await client.get(f"/v1/dispatches/{event_id}/meters", headers=read_auth())).json()
    listed = {m["meter_id"] for m in meters["items"]}
    assert listed == (set(members) - set(injected["left_out"])) | set(injected["added"])


async def test_true_roster_gives_no_drift_and_tests_never_alarm(
    leap: httpx.AsyncClient, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    group_id = await caiso_group(leap)
    await leap.put(f"/sim/groups/{group_id}/roster", json={**WINDOW, "count": 20})
    assert (await leap.post("/sim/drain?seconds=30")).json()["drained"]
    with caplog.at_level(logging.WARNING, logger="meter_sync.dispatch"):
        sent = await leap.post(f"/sim/dispatch/groups/{group_id}", json={"start_time": SLOT_START})
        assert (await leap.post("/sim/dispatch/drain?seconds=30")).json()["drained"]
        # An integration test listing strangers: stored as a test, no alarm.
        test_body = {
            "group_dispatches": [
                {
                    "market_group_id": group_id,
                    "meter_ids": ["beae2779-e392-4f00-b0cf-32e716204f78"],
                    "timeslots": [
                        {
                            "market_group_event_id": "904751e8-c0df-4d69-8a4f-9e7cebef1f84",
                            "start_time": SLOT_START,
                            "end_time": "2026-07-21T20:00:00Z",
                            "energy_kw": 10,
                            "cancelled": False,
                            "programs": ["CCA"],
                            "priority": 1,
                            "is_voluntary": False,
                            "performance_compensation_cap": "up-to-nomination",
                            "dispatch_event_types": ["standard"],
                        }
                    ],
                }
            ]
        }
        answer = await leap.post("/v2/dispatch/group/webhook/integration_test", json=test_body)
        assert answer.json()["http_status"] == 202
    assert not [r for r in caplog.records if r.getMessage() == "dispatch drift"]
    detail = await client.get(
        f"/v1/dispatches/{sent.json()['market_group_event_id']}", headers=read_auth()
    )
    assert detail.json()["drift"]["leap_only_count"] == 0
    assert detail.json()["drift"]["local_only_count"] == 0
    tests = await client.get("/v1/dispatches?include_tests=true", headers=read_auth())
    assert [i["integration_test"] for i in tests.json()["items"]].count(True) == 1
    status = (await client.get("/v1/sync/status", headers=read_auth())).json()["dispatch"]
    assert status["drift_24h"] == 0
    assert status["last_drift"] is None


async def test_demo_dispatches_now_and_then_and_the_service_reports_each_drift(
    leap: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    group_id = await caiso_group(leap)
    now = datetime.now(UTC)
    window = {
        "start_date_time": (now - timedelta(days=2)).isoformat(),
        "end_date_time": (now + timedelta(days=2)).isoformat(),
        "count": 15,
    }
    await leap.put(f"/sim/groups/{group_id}/roster", json=window)
    assert (await leap.post("/sim/drain?seconds=30")).json()["drained"]
    await leap.put("/sim/dispatch/demo", json={"every_seconds": 0.05, "drift": 2})

    async def two_sent() -> bool:
        return len((await leap.get("/sim/dispatch/demo")).json()["dispatched"]) >= 2

    assert await eventually(two_sent)
    await leap.delete("/sim/dispatch/demo")
    assert (await leap.post("/sim/dispatch/drain?seconds=30")).json()["drained"]
    for sent in (await leap.get("/sim/dispatch/demo")).json()["dispatched"]:
        detail = await client.get(
            f"/v1/dispatches/{sent['market_group_event_id']}", headers=read_auth()
        )
        drift = detail.json()["drift"]
        assert drift["leap_only"] == sorted(sent["added"])
        assert drift["local_only"] == sorted(sent["left_out"])
