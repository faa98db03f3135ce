"""Graceful shutdown: the worker exits 0 on SIGTERM and hands back what it had in hand."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.leap.client import LeapClient
from app.worker import Worker
from tests.support.db import rows, scalar
from tests.support.live import free_port
from tests.support.metrics import samples
from tests.support.settings import OPS_KEY, ROOT, WEBHOOK_SECRET, make_settings
from tests.support.wait import eventually


def _start_worker(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--metrics-port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("mode", ["api", "webhook-only"])
async def test_idle_worker_exits_0_soon_after_sigterm(
    database_url: str, engine: AsyncEngine, mode: str
) -> None:
    # Recent successful runs: nothing is due, so the leader is idle too.
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO sync_runs (mode, status, trigger, started_at, finished_at) VALUES "
            "('full', 'succeeded', 'cli', now(), now()), "
            "('delta', 'succeeded', 'cli', now(), now())"
        )
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LEAP_", "API_KEYS"))},
        "DATABASE_URL": database_url,
        "LEAP_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "API_KEYS": f"ops:{OPS_KEY}",
        "LOG_LEVEL": "INFO",
    }
    if mode == "api":
        env |= {"LEAP_API_KEY": "k", "LEAP_API_BASE_URL": "http://127.0.0.1:9"}
    process = _start_worker(env, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            assert await eventually(up, within=30), "worker did not start"
            scraped = await http.get("/metrics")
            assert scraped.status_code == 200
            assert samples(scraped.text)[("meter_sync_info", (("mode", mode),))] == 1
        await asyncio.sleep(0.5)  # let every loop reach its idle wait
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        # A generous bound that only catches a hang; how long it took is printed, not judged.
        code = await asyncio.to_thread(process.wait, 60)
        print(f"\nworker ({mode}) stopped {time.monotonic() - started:.2f} s after SIGTERM")
        assert code == 0
        assert b"worker stopped" in (process.stderr.read() if process.stderr else b"")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
async def hanging_leap() -> AsyncIterator[str]:
    """An HTTP server that accepts requests and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_stop_puts_jobs_in_hand_back_and_leaves_the_run_resumable(
    database_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    hanging_leap: str,
) -> None:
    meter_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO jobs (kind, meter_id) VALUES ('refresh_meter', $1::uuid)", (meter_id,)
        )
    settings = make_settings(database_url, leap_api_key="k", leap_api_base_url=hanging_leap)
    client = LeapClient(hanging_leap, "k", timeout=60)
    worker = Worker(settings, engine, sessions, client=client, name="shutdown-test")
    worker.shutdown_grace_s = 0.5
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:

        async def claimed_and_running() -> bool:
            job = await scalar(engine, "SELECT status FROM jobs")
            run = await scalar(engine, "SELECT status FROM sync_runs")
            return bool(job == "running" and run == "running")

        assert await eventually(claimed_and_running, within=20)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    finally:
        stop.set()
        if not task.done():
            task.cancel()
    job = (await rows(engine, "SELECT status, locked_by, attempts, meter_id FROM jobs"))[0]
    assert (job.status, job.locked_by, job.attempts) == ("queued", None, 0)
    assert str(job.meter_id) == meter_id
    # The interrupted run stays `running` with its progress: the next leader resumes it.
    run = (await rows(engine, "SELECT status, finished_at FROM sync_runs"))[0]
    assert (run.status, run.finished_at) == ("running", None)
