"""Honest health: an unreachable or unmigrated database is 503 everywhere (REST, probes,
the receiver, never 500), logged once per change of state, with what to run."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

import pytest

from app.migrate import upgrade_to_head
from app.outage import outage
from app.worker import Worker
from tests.support import events
from tests.support.db import admin, server_url
from tests.support.http import deliver, ops_auth, read_auth
from tests.support.live import LiveApp
from tests.support.settings import make_settings

# Port 9 (discard) on localhost refuses connections: PostgreSQL is "down".
DOWN = "postgresql+asyncpg://postgres@127.0.0.1:9/none"
REST = (
    "/v1/meters",
    "/v1/sync/status",
    "/v1/groups",
    "/v1/partner-references/acme-1",
    "/v1/webhook-events?status=failed,dead",
)


@pytest.fixture(autouse=True)
def _fresh_outage_state() -> None:
    outage.up()  # the tracker is per process: start each test from "healthy"


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A database that exists but was never migrated."""
    server, _ = server_url()
    name = f"meter_sync_empty_{secrets.token_hex(4)}"
    await admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        await admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "meter_sync.database"]


async def test_unreachable_database_is_503_everywhere_and_logged_once(
    live_app: LiveApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with live_app(database_url=DOWN, client_timeout=15) as (_, c):
        for _ in range(2):  # asked twice: still one log line
            for path in REST:
                response = await c.get(path, headers=ops_auth())
                assert response.status_code == 503, (path, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                assert "PostgreSQL is unreachable" in response.json()["detail"]
            webhook = await deliver(c, events.body(events.meter_created()))
            assert webhook.status_code == 503
            ready = await c.get("/readyz")
            assert ready.status_code == 503
            assert "DATABASE_URL" in ready.json()["detail"]
        run = await c.post("/v1/sync/runs", json={"mode": "full"}, headers=ops_auth())
        assert run.status_code in (409, 503)  # webhook-only is said first, else 503
    lines = _outage_lines(caplog)
    assert len(lines) == 1, lines
    assert "unreachable" in lines[0]
    # No traceback anywhere: neither ours nor the server's "Exception in ASGI application".
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


async def test_worker_loops_log_one_line_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from app.db import create_engine, session_factory

    caplog.set_level(logging.INFO)
    settings = make_settings(DOWN)
    engine = create_engine(DOWN, pool_size=2)
    worker = Worker(settings, engine, session_factory(engine))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    # Several turns of the retry loop (2 s apart) meet the outage.
    await asyncio.sleep(4.5)
    stop.set()
    await running
    await engine.dispose()
    assert len(_outage_lines(caplog)) == 1, _outage_lines(caplog)
    assert not [r for r in caplog.records if r.exc_info]


async def test_unmigrated_database_says_to_migrate_then_comes_back(
    live_app: LiveApp, empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with live_app(database_url=empty_database) as (_, c):
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert "run `meter-sync migrate`" in ready.json()["detail"]
        for path in REST:
            response = await c.get(path, headers=ops_auth())
            assert response.status_code == 503, (path, response.text)
            assert "meter-sync migrate" in response.json()["detail"]
        webhook = await deliver(c, events.body(events.meter_created()))
        assert webhook.status_code == 503
        assert "meter-sync migrate" in webhook.json()["detail"]
        down = _outage_lines(caplog)
        assert len(down) == 1, down  # said at start-up, not again per request
        assert "meter-sync migrate" in down[0]

        await asyncio.to_thread(upgrade_to_head, empty_database)
        assert (await c.get("/readyz")).status_code == 200
        assert (await c.get("/v1/meters", headers=read_auth())).status_code == 200
    lines = _outage_lines(caplog)
    assert len(lines) == 2, lines
    assert "available again" in lines[1]
