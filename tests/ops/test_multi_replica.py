"""Three API replicas and two workers on one PostgreSQL, against the fake Leap.

Webhooks go round-robin to the three `serve --no-worker` processes; the two `worker`
processes share enrichment jobs and elect one leader for scheduled reconciliation. The
leader is then SIGKILLed. Checked: never more than one leader, leadership moves, no job
done twice, no event lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.leap_sim.server import build_state, serve_in_thread
from app.locks import LEADER as LEADER_LOCK_ID
from tests.support import events
from tests.support.db import scalar
from tests.support.http import healthy
from tests.support.live import free_port
from tests.support.settings import ROOT, WEBHOOK_SECRET
from tests.support.wait import eventually

SIM_KEY = "sim-key"
METERS = 300

# Five processes and a leader failover: in the default run, skipped with `-m "not slow"`.
pytestmark = pytest.mark.slow

# Who holds the leader's advisory lock: the OS pid in the holder's application_name.
_LEADERS = f"""
    SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.classid = {LEADER_LOCK_ID >> 32} AND l.objid = {LEADER_LOCK_ID & 0xFFFFFFFF}
"""


def _env(database_url: str, sim_url: str, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEAP_", "API_KEYS"))}
    env.update(
        DATABASE_URL=database_url,
        LEAP_WEBHOOK_SECRETS=WEBHOOK_SECRET,
        API_KEYS="ops:replica-ops-key-0123456",
        LEAP_API_KEY=SIM_KEY,
        LEAP_API_BASE_URL=sim_url,
        SYNC_INTERVAL_SECONDS="2",
        FULL_SYNC_INTERVAL_SECONDS="3600",
        LOG_LEVEL="DEBUG",
        STATE_DIR=str(state),
    )
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _leaders(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        from sqlalchemy import text

        return [row[0] for row in await conn.execute(text(_LEADERS))]


async def test_three_replicas_two_workers(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    sim = serve_in_thread(build_state(meters=METERS, groups=4, seed=5, api_key=SIM_KEY))
    env = _env(database_url, sim.url, tmp_path / "state")
    ports = [free_port() for _ in range(3)]
    servers = [
        _start(["serve", "--no-worker", "--port", str(p)], env, tmp_path / f"server{i}.log")
        for i, p in enumerate(ports)
    ]
    workers = [_start(["worker"], env, tmp_path / f"worker{i}.log") for i in range(2)]
    most_leaders = 0
    watching = True

    async def watch_leaders() -> None:
        nonlocal most_leaders
        while watching:
            most_leaders = max(most_leaders, len(await _leaders(engine)))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_leaders())
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]

        async def all_up() -> bool:
            return all([await healthy(url) for url in urls])

        assert await eventually(all_up, within=30)
        portfolio = sim.state.portfolio
        deliveries = []
        for i in range(METERS):
            record = portfolio.meter_record(i)
            assert record is not None
            meter_id = portfolio.meter_id(i)
            deliveries.append(
                events.meter_created(
                    meter_id, record.get("partner_reference"), record["transmission_region"]
                )
            )
            deliveries.append(
                events.global_status(meter_id, "ELIGIBLE", record["transmission_region"])
            )
        event_ids = [str(uuid.uuid4()) for _ in deliveries]
        limit = asyncio.Semaphore(16)

        async def post(n: int, http: httpx.AsyncClient) -> int:
            async with limit:
                response = await http.post(
                    f"{urls[n % 3]}/webhooks/leap",
                    content=events.body(deliveries[n], event_ids[n]),
                    headers={
                        "X-Webhook-Secret": WEBHOOK_SECRET,
                        "Content-Type": "application/json",
                    },
                )
                return response.status_code

        async with httpx.AsyncClient(timeout=30) as http:
            codes = await asyncio.gather(*(post(n, http) for n in range(len(deliveries))))
        assert Counter(codes) == {202: len(deliveries)}

        async def runs_succeeded() -> int:
            return int(
                await scalar(engine, "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'")
            )

        async def has_leader() -> bool:
            return bool(await _leaders(engine))

        async def any_run_done() -> bool:
            return await runs_succeeded() > 0

        assert await eventually(has_leader, within=30)
        assert await eventually(any_run_done, within=90)
        # Kill the leader; the other worker must take over and go on reconciling.
        (holder,) = await _leaders(engine)
        leader_pid = int(holder.rsplit(":", 1)[1])
        leader = next(w for w in workers if w.pid == leader_pid)
        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=10)
        before = await runs_succeeded()

        async def new_leader() -> bool:
            holders = await _leaders(engine)
            return len(holders) == 1 and holders[0] != holder

        assert await eventually(new_leader, within=30)
        assert await eventually(lambda: _more_runs(engine, before), within=60)
        stored = await scalar(engine, "SELECT count(*) FROM webhook_events")
        assert stored == len(deliveries)
        assert await scalar(engine, "SELECT count(*) FROM meters") == METERS
        assert await scalar(engine, "SELECT count(*) FROM meters WHERE leap_meter IS NULL") == 0
    finally:
        watching = False
        await watcher
        for process in [*servers, *workers]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*servers, *workers]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        sim.stop()
    assert most_leaders == 1
    done = _jobs_done(tmp_path)
    assert done, "no enrichment job was logged as done"
    assert len(done) == len(set(done)), "a job was done twice"


async def _more_runs(engine: AsyncEngine, before: int) -> bool:
    count = await scalar(engine, "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'")
    return int(count) > before


def _jobs_done(logs: Path) -> list[int]:
    """Job ids the workers logged as done (their logs are JSON lines, not on a terminal)."""
    done: list[int] = []
    for log in logs.glob("worker*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"job done"' in line:
                done.append(json.loads(line)["job_id"])
    return done
