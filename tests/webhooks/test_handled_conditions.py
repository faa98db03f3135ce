"""Handled conditions log one warning line, no traceback; every receiver answer is counted.

Everything runs over real HTTP against real PostgreSQL (or a port where none listens, for
an outage). Log records are read from the root logger, where uvicorn's own records go too,
so a traceback the server logs for an exception that escaped the app is seen here.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from app.outage import outage
from tests.support import events
from tests.support.db import rows
from tests.support.http import deliver, read_auth
from tests.support.live import LiveApp, LiveServer
from tests.support.settings import WEBHOOK_SECRET

DOWN = "postgresql+asyncpg://postgres@127.0.0.1:9/none"  # port 9 refuses: PostgreSQL "down"


def answers(status: int) -> float:
    value = REGISTRY.get_sample_value("meter_sync_webhook_answers_total", {"status": str(status)})
    return value or 0.0


def conflicts() -> float:
    return REGISTRY.get_sample_value("meter_sync_webhook_conflicting_deliveries_total") or 0.0


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


def warnings(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    found = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return [m for m in found if needle in m]


async def _send_half_a_body_and_hang_up(server: LiveServer) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /webhooks/leap HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-Webhook-Secret: {WEBHOOK_SECRET}\r\nContent-Length: 5000\r\n\r\n".encode()
        + b'{"webhook_event_id": "'
    )
    await writer.drain()
    await asyncio.sleep(0.05)  # the app is now waiting for the rest of the body
    writer.close()
    await writer.wait_closed()


async def test_sender_dropping_mid_body_is_one_warning_and_counted(
    live_app: LiveApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    before = answers(499)
    async with live_app() as (server, client):
        await _send_half_a_body_and_hang_up(server)
        for _ in range(200):
            if answers(499) > before:
                break
            await asyncio.sleep(0.02)
        # The service carries on: the next delivery is stored as usual.
        assert (await deliver(client, events.body(events.meter_created()))).status_code == 202
    assert answers(499) == before + 1
    assert len(warnings(caplog, "disconnected before the body was complete")) == 1
    assert tracebacks(caplog) == []


async def test_rest_503s_during_an_outage_log_one_line_without_traceback(
    live_app: LiveApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    outage.up()  # the outage state is process-wide: start from "healthy"
    try:
        async with live_app(database_url=DOWN, client_timeout=10) as (_, client):
            meters = await client.get("/v1/meters", headers=read_auth())
            status = await client.get("/v1/sync/status", headers=read_auth())
            before = answers(503)
            webhook = await deliver(client, events.body(events.meter_created()))
    finally:
        outage.up()
    assert [meters.status_code, status.status_code, webhook.status_code] == [503, 503, 503]
    assert meters.headers["content-type"] == "application/problem+json"
    assert meters.headers["retry-after"] == "5"
    assert answers(503) == before + 1
    # Three refusals, one line: the outage is said once, not per request.
    said = [r.getMessage() for r in caplog.records if "answering 503" in r.getMessage()]
    assert len(said) == 1, said
    assert tracebacks(caplog) == []


async def test_conflicting_redelivery_warns_and_counts(
    client: httpx.AsyncClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    event_id = str(uuid.uuid4())
    first = events.body(events.meter_created(), event_id)
    other = events.body(events.meter_created(partner_reference="someone-else"), event_id)
    before = conflicts()
    assert (await deliver(client, first)).status_code == 202
    assert (await deliver(client, first)).status_code == 200  # same body: no conflict
    assert conflicts() == before
    assert (await deliver(client, other)).status_code == 200
    assert conflicts() == before + 1
    found = warnings(caplog, "redelivered with a different body")
    assert len(found) == 1
    row = await rows(
        engine,
        "SELECT duplicate_deliveries, conflicting_deliveries FROM webhook_events "
        "WHERE webhook_event_id = :id",
        id=event_id,
    )
    assert tuple(row[0]) == (2, 1)
    assert tracebacks(caplog) == []


async def test_a_receiver_bug_is_a_counted_500_with_one_traceback(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("simulated receiver bug")

    monkeypatch.setattr("app.webhooks.receiver.receive", broken)
    before = answers(500)
    response = await deliver(client, events.body(events.meter_created()))
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert answers(500) == before + 1
    logged = tracebacks(caplog)
    assert len(logged) == 1
    assert "receiver failed unexpectedly" in logged[0].getMessage()


@pytest.mark.parametrize("status", [202, 401, 415])
async def test_each_answer_is_counted_by_status(client: httpx.AsyncClient, status: int) -> None:
    headers = {"X-Webhook-Secret": WEBHOOK_SECRET, "Content-Type": "application/json"}
    if status == 401:
        headers["X-Webhook-Secret"] = "not-the-secret-at-all"
    if status == 415:
        headers["Content-Type"] = "text/plain"
    before = answers(status)
    response = await client.post(
        "/webhooks/leap", content=events.body(events.meter_created()), headers=headers
    )
    assert response.status_code == status
    assert answers(status) == before + 1
