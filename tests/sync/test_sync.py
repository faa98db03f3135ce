"""The Leap loop against the fake Leap over real HTTP and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.leap.client import LeapAuthError, LeapClient
from app.leap.models import LeapMeter
from app.leap_sim.server import RunningSim, build_state, serve_in_thread
from app.markets import DEFAULT_MARKET_TIMEZONES
from app.models import RunMode, SyncRun
from app.sync import records, runs
from app.webhooks.service import ApplyOptions
from app.worker import Worker
from tests.support import events
from tests.support.db import rows, scalar
from tests.support.http import deliver, ops_auth, read_auth
from tests.support.live import LiveApp
from tests.support.settings import OPS_KEY, ROOT, WEBHOOK_SECRET, make_settings
from tests.support.wait import eventually

SIM_KEY = "sim-key"
N = 600


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    running = serve_in_thread(build_state(meters=N, groups=6, seed=7, api_key=SIM_KEY))
    yield running
    running.stop()


def api_settings(database_url: str, sim: RunningSim, **extra: Any) -> Settings:
    return make_settings(
        database_url,
        leap_api_key=SecretStr(SIM_KEY),
        leap_api_base_url=sim.url,
        **extra,
    )


@pytest.fixture
async def leap(sim: RunningSim) -> AsyncIterator[LeapClient]:
    async with LeapClient(sim.url, SIM_KEY, backoff_base=0.01, backoff_cap=0.2) as client:
        yield client


async def full_run(sessions: async_sessionmaker[AsyncSession], client: LeapClient) -> SyncRun:
    async with sessions() as session:
        run = await runs.request_run(session, RunMode.FULL, "cli")
        await session.commit()
    return await runs.execute(sessions, client, run.id)


async def sim_post(sim: RunningSim, path: str, body: Any) -> Any:
    async with httpx.AsyncClient(base_url=sim.url, timeout=30) as http:
        response = await http.request(
            "PUT" if path == "/sim/faults" else "POST",
            path,
            json=body,
            headers={"Authorization": f"Bearer {SIM_KEY}"},
        )
        response.raise_for_status()
        return response.json()


async def test_full_run_mirrors_every_meter(
    sim: RunningSim,
    leap: LeapClient,
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    run = await full_run(sessions, leap)
    assert run.status == "succeeded"
    assert run.meters == N
    assert await scalar(engine, "SELECT count(*) FROM meters") == N
    assert await scalar(engine, "SELECT count(*) FROM meters WHERE leap_meter IS NULL") == 0
    assert await scalar(engine, "SELECT count(*) FROM meters WHERE leap_enrollment IS NULL") == 0
    # A stored record is Leap's record, field for field.
    portfolio = sim.state.portfolio
    for index in (0, N // 2, N - 1):
        meter_id = portfolio.meter_id(index)
        stored = await scalar(
            engine, "SELECT leap_meter FROM meters WHERE meter_id = :id", id=meter_id
        )
        assert stored == portfolio.meter_record(index)
    assert await scalar(engine, "SELECT count(*) FROM group_memberships") > 0
    # Running it again changes nothing and still succeeds.
    again = await full_run(sessions, leap)
    assert again.status == "succeeded"
    assert await scalar(engine, "SELECT count(*) FROM meters") == N


async def test_delta_run_touches_only_changed_meters(
    sim: RunningSim, leap: LeapClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await full_run(sessions, leap)
    changed = [sim.state.portfolio.meter_id(i) for i in (3, 5, 8)]
    await sim_post(
        sim, "/sim/meters/status", {"meter_ids": changed, "global_enrollment_status": "INELIGIBLE"}
    )
    async with sessions() as session:
        run = await runs.request_run(session, RunMode.DELTA, "cli")
        await session.commit()
    delta = await runs.execute(sessions, leap, run.id)
    assert delta.status == "succeeded"
    assert delta.mode == "delta"
    assert delta.meters == 3
    async with sessions() as session:
        from app.models import Meter

        for meter_id in changed:
            meter = await session.get(Meter, uuid.UUID(meter_id))
            assert meter is not None
            assert meter.enrollment_status == "INELIGIBLE"


async def test_full_run_archives_meters_leap_no_longer_returns(
    sim: RunningSim,
    leap: LeapClient,
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    await full_run(sessions, leap)
    gone = [sim.state.portfolio.meter_id(i) for i in (10, 11)]
    await sim_post(sim, "/sim/meters/remove", {"meter_ids": gone})
    run = await full_run(sessions, leap)
    assert run.status == "succeeded"
    portfolio = sim.state.portfolio
    archived_by_leap = {
        portfolio.meter_id(i)
        for i in range(N)
        if (record := portfolio.meter_record(i)) is not None and record["is_archived"]
    }
    archived = await rows(engine, "SELECT meter_id::text FROM meters WHERE is_archived")
    assert {r[0] for r in archived} == archived_by_leap | set(gone)
    assert await scalar(engine, "SELECT count(*) FROM meters") == N  # never deleted


async def test_storms_of_429_and_5xx_still_converge(
    sim: RunningSim,
    leap: LeapClient,
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    await sim_post(
        sim,
        "/sim/faults",
        {"rate_429": 0.25, "retry_after_seconds": 0, "rate_5xx": 0.25, "rate_drop": 0.1},
    )
    run = await full_run(sessions, leap)
    assert run.status == "succeeded"
    assert await scalar(engine, "SELECT count(*) FROM meters") == N
    stats = sim.state.stats()
    assert stats["faults"], stats


async def test_401_stops_the_run_with_a_clear_status(
    sim: RunningSim,
    sessions: async_sessionmaker[AsyncSession],
    database_url: str,
    live_app: LiveApp,
) -> None:
    async with LeapClient(sim.url, "wrong-key") as bad:
        async with sessions() as session:
            run = await runs.request_run(session, RunMode.FULL, "cli")
            await session.commit()
        with pytest.raises(LeapAuthError):
            await runs.execute(sessions, bad, run.id)
    async with live_app(api_settings(database_url, sim)) as (_, c):
        status = (await c.get("/v1/sync/status", headers=read_auth())).json()
    assert status["mode"] == "api"
    assert status["last_run"]["status"] == "failed"
    assert "API key" in status["last_run"]["error"]


async def test_older_fetched_record_never_overwrites_newer(
    sim: RunningSim, sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    record = sim.state.portfolio.meter_record(0)
    assert record is not None
    newer = LeapMeter.model_validate(
        {
            **record,
            "partner_reference": "newer-ref",
            "audit": {**record["audit"], "updated_at": "2030-01-02T00:00:00Z"},
        }
    )
    older = LeapMeter.model_validate(
        {
            **record,
            "partner_reference": "older-ref",
            "audit": {**record["audit"], "updated_at": "2030-01-01T00:00:00Z"},
        }
    )
    async with sessions() as session:
        await records.store_meters(session, [newer])
        await records.store_meters(session, [older])
        await session.commit()
    assert await scalar(engine, "SELECT partner_reference FROM meters") == "newer-ref"
    assert await scalar(engine, "SELECT leap_updated_at FROM meters") == datetime(
        2030, 1, 2, tzinfo=UTC
    )


async def test_enrichment_lands_within_seconds_of_meter_created(
    sim: RunningSim, database_url: str, live_app: LiveApp
) -> None:
    settings = api_settings(database_url, sim)
    meter_id = sim.state.portfolio.meter_id(42)
    leap_record = sim.state.portfolio.meter_record(42)
    assert leap_record is not None
    meter: dict[str, Any] = {}
    async with live_app(settings, run_worker=True) as (_, client):
        payload = events.meter_created(
            meter_id, leap_record.get("partner_reference"), leap_record["transmission_region"]
        )
        assert (await deliver(client, events.body(payload))).status_code == 202

        async def enriched() -> bool:
            meter.update((await client.get(f"/v1/meters/{meter_id}", headers=read_auth())).json())
            return meter["details_source"] == "api" and meter["enrollment"]["status"] is not None

        assert await eventually(enriched, within=15)
    assert meter["details_source"] == "api"
    assert meter["utility"]["name"] == leap_record["utility"]["utility_name"]
    assert meter["grid"]["load_zone"] == leap_record["site"]["load_zone"]


async def test_two_workers_elect_one_leader_and_leadership_moves(
    sim: RunningSim, database_url: str, engine: AsyncEngine
) -> None:
    from app.db import create_engine, session_factory

    settings = api_settings(database_url, sim, sync_interval_seconds=3600)
    engines = [create_engine(database_url, pool_size=3) for _ in range(2)]
    workers = [Worker(settings, e, session_factory(e), name=f"w{i}") for i, e in enumerate(engines)]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(w.run(s)) for w, s in zip(workers, stops, strict=True)]
    try:
        assert await eventually(lambda: sum(w.is_leader for w in workers) == 1)
        leaders = [w for w in workers if w.is_leader]
        assert len(leaders) == 1
        first = workers.index(leaders[0])

        # The leader runs the due full run; then the leader stops and the other takes over.
        async def run_done() -> bool:
            done = await scalar(engine, "SELECT count(*) FROM sync_runs WHERE status='succeeded'")
            return bool(done)

        assert await eventually(run_done)
        stops[first].set()
        await tasks[first]
        other = workers[1 - first]
        assert await eventually(lambda: other.is_leader)
        assert await scalar(engine, "SELECT count(*) FROM sync_runs WHERE status='running'") == 0
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for e in engines:
            await e.dispose()


async def test_killed_worker_resumes_run_without_duplicates(
    database_url: str, engine: AsyncEngine
) -> None:
    big = 3000
    running = serve_in_thread(build_state(meters=big, groups=6, seed=11, api_key=SIM_KEY))
    try:
        await sim_post(running, "/sim/faults", {"latency_rate": 1.0, "latency_ms": 150})
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LEAP_API_KEY": SIM_KEY,
            "LEAP_API_BASE_URL": running.url,
            "LEAP_WEBHOOK_SECRETS": WEBHOOK_SECRET,
            "API_KEYS": f"ops:{OPS_KEY}",
            "LOG_LEVEL": "WARNING",
        }

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        first = start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pages = await scalar(engine, "SELECT coalesce(max(pages), 0) FROM sync_runs")
            if pages >= 2:
                break
            await asyncio.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = await rows(engine, "SELECT id, status, pages FROM sync_runs")
        assert killed_at[0][1] == "running"
        await sim_post(running, "/sim/faults", {"latency_rate": 0.0})
        second = start()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                status = await scalar(engine, "SELECT status FROM sync_runs ORDER BY id LIMIT 1")
                if status in ("succeeded", "failed"):
                    break
                await asyncio.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        final = await rows(engine, "SELECT id, status, pages, meters FROM sync_runs ORDER BY id")
        assert final[0][0] == killed_at[0][0]  # the same run, resumed
        assert final[0][1] == "succeeded"
        assert final[0][3] == big  # every meter counted once: no page stored twice
        assert await scalar(engine, "SELECT count(*) FROM meters") == big
        linked = await scalar(
            engine, "SELECT count(*) FROM partner_events WHERE kind = 'meter_linked'"
        )
        with_ref = await scalar(
            engine, "SELECT count(*) FROM meters WHERE partner_reference IS NOT NULL"
        )
        assert linked == with_ref
    finally:
        running.stop()


async def test_failed_event_is_retried_by_the_worker_and_replayable(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.webhooks import retry

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("transient bug")

    monkeypatch.setattr("app.webhooks.repository.store_meter_event", broken)
    event_id = str(uuid.uuid4())
    assert (await deliver(client, events.body(events.meter_created(), event_id))).status_code == 202
    monkeypatch.undo()
    # Not due yet: nothing is retried.
    assert (
        await retry.retry_due(sessions, ApplyOptions(refresh=False, zones=DEFAULT_MARKET_TIMEZONES))
        == 0
    )
    async with engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE webhook_events SET next_attempt_at = now()"))
    assert (
        await retry.retry_due(sessions, ApplyOptions(refresh=False, zones=DEFAULT_MARKET_TIMEZONES))
        == 1
    )
    row = (await client.get(f"/v1/webhook-events/{event_id}", headers=ops_auth())).json()
    assert row["status"] == "applied"
    assert row["attempts"] == 2
    assert await scalar(engine, "SELECT count(*) FROM meters") == 1
    replayed = await client.post(f"/v1/webhook-events/{event_id}/replay", headers=ops_auth())
    assert replayed.status_code == 200
    assert replayed.json()["status"] == "applied"
    missing = await client.post(f"/v1/webhook-events/{uuid.uuid4()}/replay", headers=ops_auth())
    assert missing.status_code == 404


async def test_webhook_only_mode_is_said_plainly(client: httpx.AsyncClient) -> None:
    status = (await client.get("/v1/sync/status", headers=read_auth())).json()
    assert status["mode"] == "webhook-only"
    assert "LEAP_API_KEY" in status["detail"]
    refused = await client.post("/v1/sync/runs", json={"mode": "full"}, headers=ops_auth())
    assert refused.status_code == 409


async def test_requested_run_is_queued_for_the_leader(
    sim: RunningSim, database_url: str, live_app: LiveApp
) -> None:
    async with live_app(api_settings(database_url, sim)) as (_, c):
        response = await c.post("/v1/sync/runs", json={"mode": "full"}, headers=ops_auth())
        assert response.status_code == 202
        assert response.json()["status"] == "queued"
        assert (
            await c.post("/v1/sync/runs", json={"mode": "weekly"}, headers=ops_auth())
        ).status_code == 422
        assert (
            await c.post("/v1/sync/runs", json={"mode": "full"}, headers=read_auth())
        ).status_code == 403
        listed = (await c.get("/v1/sync/runs", headers=ops_auth())).json()
        assert [r["id"] for r in listed] == [response.json()["id"]]


def test_retry_delay_grows_and_caps() -> None:
    from app.webhooks.service import retry_delay

    assert retry_delay(1) == timedelta(seconds=30)
    assert retry_delay(2) == timedelta(seconds=60)
    assert retry_delay(20) == timedelta(hours=1)
