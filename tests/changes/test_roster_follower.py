"""The example reader (examples/roster_follower.py) keeps exact rosters from the feed.

It follows the feed while webhook events, two full reconciliations with the fake Leap
(meters archived, removed, a group's Leap roster replaced in between) and replays of
earlier events all run, and must end with exactly the service's rosters.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.leap.client import LeapClient
from app.leap_sim.server import RunningSim, build_state, serve_in_thread
from app.models import RunMode
from app.sync import runs
from examples.roster_follower import RosterFollower, service_rosters
from tests.support import events
from tests.support.http import deliver, ops_auth, read_auth
from tests.support.live import LiveApp

SIM_KEY = "sim-key"
N = 120


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    running = serve_in_thread(build_state(meters=N, groups=4, seed=5, api_key=SIM_KEY))
    yield running
    running.stop()


async def _full_run(sessions: async_sessionmaker[AsyncSession], sim: RunningSim) -> str:
    async with LeapClient(sim.url, SIM_KEY, backoff_base=0.01, backoff_cap=0.2) as leap:
        async with sessions() as session:
            run = await runs.request_run(session, RunMode.FULL, "cli")
            await session.commit()
        return (await runs.execute(sessions, leap, run.id)).status


async def _sim(sim: RunningSim, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=sim.url, timeout=30) as http:
        response = await http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {SIM_KEY}"}
        )
        response.raise_for_status()
        return response.json()


class Traffic:
    """Random webhook events about the fake Leap's meters and groups (and unknown ones)."""

    def __init__(self, client: httpx.AsyncClient, sim: RunningSim, groups: list[Any]) -> None:
        self.client = client
        self.sim = sim
        self.groups = groups
        self.rng = random.Random(3)
        self.sent: list[tuple[str, str]] = []  # (webhook_event_id, event type)
        cores = [sim.state.portfolio.core(i) for i in range(N)]
        self.meters = [(c.meter_id, c.region.name) for c in cores if c is not None]

    def _meter(self) -> tuple[str, str]:
        return self.rng.choice(self.meters)

    def _event(self, n: int) -> dict[str, Any]:
        roll = self.rng.random()
        meter_id, region = self._meter()
        if roll < 0.3:
            return events.meter_created(meter_id, f"moved-{n % 7}", region)
        if roll < 0.4:
            return events.meter_created(str(uuid.uuid4()), f"new-{n}", "CAISO")
        if roll < 0.7:
            status = self.rng.choice(["ACTIVE", "ELIGIBLE", "PENDING"])
            return events.global_status(meter_id, status, region)
        group = self.rng.choice(self.groups)
        members = [self._meter()[0] for _ in range(self.rng.randint(0, 25))]
        return events.group_updated(
            [*dict.fromkeys(members), str(uuid.uuid4())],
            group_id=group["market_group_id"],
            name=group["market_group_name"],
            start=group["start_date_time"],
            end=self.rng.choice(
                [group["end_date_time"], group["start_date_time"][:10] + "T23:00:00Z"]
            ),
        )

    async def send(self, count: int) -> None:
        for n in range(count):
            event_id = str(uuid.uuid4())
            payload = self._event(n)
            response = await deliver(self.client, events.body(payload, event_id))
            assert response.status_code == 202, response.text
            self.sent.append((event_id, payload["webhook_event_type"]))
            await asyncio.sleep(0)

    async def replay(self, count: int) -> None:
        for event_id, _ in self.rng.sample(self.sent, count):
            response = await self.client.post(
                f"/v1/webhook-events/{event_id}/replay", headers=ops_auth()
            )
            assert response.status_code == 200, response.text


def _followed_dates(groups: list[dict[str, Any]]) -> list[date]:
    days: set[date] = set()
    for group in groups:
        start = datetime.fromisoformat(group["start_date_time"]).date()
        days |= {start + timedelta(days=2), start + timedelta(days=9)}
    return sorted(days)


async def test_example_reader_ends_with_exactly_the_services_rosters(
    sim: RunningSim, live_app: LiveApp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    groups = (await _sim(sim, "GET", "/sim/groups"))["groups"]
    dates = _followed_dates(groups)
    settings = {"leap_api_key": SecretStr(SIM_KEY), "leap_api_base_url": sim.url}
    async with live_app(**settings) as (server, client):
        traffic = Traffic(client, sim, groups)
        async with httpx.AsyncClient(base_url=server.url, headers=read_auth(), timeout=60) as api:
            follower = RosterFollower(api, dates)
            stop = asyncio.Event()

            async def follow() -> None:
                while not stop.is_set():
                    await follower.step(wait=1)

            following = asyncio.ensure_future(follow())
            # Events while Leap's records are stored for the first time.
            first = await asyncio.gather(_full_run(sessions, sim), traffic.send(60))
            assert first[0] == "succeeded"
            # Leap changes: statuses, archived and vanished meters, a group's members.
            ids = [sim.state.portfolio.meter_id(i) for i in range(N)]
            rostered = await service_rosters(api, dates)
            members = sorted({m for roster in rostered.values() for m in roster} & set(ids))
            assert len(members) >= 8
            await _sim(sim, "POST", "/sim/meters/status", {
                "meter_ids": ids[:20], "global_enrollment_status": "ACTIVE"})  # fmt: skip
            await _sim(sim, "POST", "/sim/meters/archive", {"meter_ids": members[:4]})
            await _sim(sim, "POST", "/sim/meters/remove", {"meter_ids": members[4:8]})
            group_id = groups[0]["market_group_id"]
            await _sim(sim, "PUT", f"/sim/groups/{group_id}/roster", {"count": 15})
            # A second full run while more events and replays of earlier ones arrive.
            second = await asyncio.gather(
                _full_run(sessions, sim), traffic.send(40), traffic.replay(25)
            )
            assert second[0] == "succeeded"
            # Meters of the rosters vanish from Leap; a run alone archives them.
            rostered = await service_rosters(api, dates)
            members = sorted({m for roster in rostered.values() for m in roster} & set(ids))
            await _sim(sim, "POST", "/sim/meters/remove", {"meter_ids": members[:3]})
            assert await _full_run(sessions, sim) == "succeeded"
            stop.set()
            await following
            while await follower.step(wait=1):
                pass  # drain what the last step had not reached
            expected = await service_rosters(api, dates)
        assert len(expected) >= 3  # several groups and dates have members
        assert follower.rosters == expected
