"""Each reconciliation run counts what it changed: meters new, updated, archived."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.leap.client import LeapClient
from app.leap_sim.server import RunningSim, build_state, serve_in_thread
from app.models import RunMode, SyncRun
from app.sync import runs

SIM_KEY = "sim-key"
N = 300


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    running = serve_in_thread(build_state(meters=N, groups=4, seed=11, api_key=SIM_KEY))
    yield running
    running.stop()


@pytest.fixture
async def leap(sim: RunningSim) -> AsyncIterator[LeapClient]:
    async with LeapClient(sim.url, SIM_KEY, backoff_base=0.01, backoff_cap=0.2) as client:
        yield client


async def _run(
    sessions: async_sessionmaker[AsyncSession], client: LeapClient, mode: RunMode
) -> SyncRun:
    async with sessions() as session:
        run = await runs.request_run(session, mode, "cli")
        await session.commit()
    return await runs.execute(sessions, client, run.id)


async def _control(sim: RunningSim, path: str, meter_ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=sim.url, timeout=30) as http:
        response = await http.post(
            path, json={"meter_ids": meter_ids}, headers={"Authorization": f"Bearer {SIM_KEY}"}
        )
        response.raise_for_status()


def _active(sim: RunningSim, count: int, skip: int = 0) -> list[str]:
    portfolio = sim.state.portfolio
    found = [
        portfolio.meter_id(i)
        for i in range(N)
        if (record := portfolio.meter_record(i)) is not None and not record["is_archived"]
    ]
    return found[skip : skip + count]


async def test_runs_count_new_updated_and_archived_meters(
    sim: RunningSim, leap: LeapClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await _run(sessions, leap, RunMode.FULL)
    assert first.status == "succeeded"
    assert (first.meters_new, first.meters_updated, first.meters_archived) == (N, 0, 0)

    again = await _run(sessions, leap, RunMode.FULL)
    assert (again.meters_new, again.meters_updated, again.meters_archived) == (0, 0, 0)

    # Leap archives two meters (a newer record): updated and archived by the delta run.
    await _control(sim, "/sim/meters/archive", _active(sim, 2))
    delta = await _run(sessions, leap, RunMode.DELTA)
    assert delta.mode == "delta"
    assert (delta.meters_new, delta.meters_updated, delta.meters_archived) == (0, 2, 2)

    # Leap stops returning three meters: the full run archives them (never deletes).
    await _control(sim, "/sim/meters/remove", _active(sim, 3, skip=2))
    full = await _run(sessions, leap, RunMode.FULL)
    assert (full.meters_new, full.meters_updated, full.meters_archived) == (0, 0, 3)
