"""GET /metrics: receiver outcomes, database gauges, a database that is down, multi-process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import metrics
from app.config import Settings
from app.db import create_engine
from app.worker import Worker
from tests.support import events
from tests.support.db import rows
from tests.support.http import deliver
from tests.support.metrics import samples
from tests.support.settings import ROOT, make_settings


def _delivered(event_type: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "meter_sync_webhook_deliveries_total", {"type": event_type, "outcome": outcome}
    )
    return value or 0.0


async def test_receiver_outcomes_are_counted(client: httpx.AsyncClient) -> None:
    before = {
        key: _delivered(*key)
        for key in [
            ("meter.created", "accepted"),
            ("meter.created", "duplicate"),
            ("other", "ignored"),
            ("unknown", "unauthorized"),
            ("unknown", "too_large"),
            ("unknown", "invalid"),
        ]
    }
    latency_before = REGISTRY.get_sample_value("meter_sync_webhook_receive_seconds_count") or 0
    body = events.body(events.meter_created())
    assert (await deliver(client, body)).status_code == 202
    assert (await deliver(client, body)).status_code == 200
    unknown = events.body({"webhook_event_type": "meter.brand-new"})
    assert (await deliver(client, unknown)).status_code == 202
    assert (await deliver(client, body, secret="nope")).status_code == 401
    too_big = b'{"x": "' + b"y" * (17 * 1024 * 1024) + b'"}'
    assert (await deliver(client, too_big)).status_code == 413
    assert (await deliver(client, b"{not json")).status_code == 400

    for key, value in before.items():
        assert _delivered(*key) == value + 1, key
    latency = REGISTRY.get_sample_value("meter_sync_webhook_receive_seconds_count")
    assert latency == latency_before + 6


async def test_metrics_endpoint_is_open_and_reads_the_database(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    assert (await deliver(client, events.body(events.meter_created()))).status_code == 202
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert found[("meter_sync_metrics_database_up", ())] == 1
    assert found[("meter_sync_info", (("mode", "webhook-only"),))] == 1
    assert found[("meter_sync_job_queue_depth", ())] == 0
    assert ("meter_sync_job_queue_oldest_age_seconds", ()) in found
    assert found[("meter_sync_webhook_events_not_applied", (("status", "dead"),))] == 0
    assert 0 <= found[("meter_sync_last_webhook_age_seconds", ())] < 60
    assert found[("meter_sync_meters", (("enrollment_status", "none"),))] == 1
    assert (
        "meter_sync_webhook_deliveries_total",
        (("outcome", "accepted"), ("type", "meter.created")),
    ) in found


async def test_database_down_never_fails_the_scrape() -> None:
    dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none", pool_size=1)
    try:
        text = (await metrics.render(metrics.DatabaseGauges(dead, "api"))).decode()
    finally:
        await dead.dispose()
    found = samples(text)
    assert found[("meter_sync_metrics_database_up", ())] == 0
    assert ("meter_sync_job_queue_depth", ()) not in found
    assert ("meter_sync_webhook_receive_seconds_count", ()) in found


async def test_queue_gauges_and_sync_age(engine: AsyncEngine, database_url: str) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO jobs (kind, meter_id, run_after) VALUES "
            "('refresh_meter', gen_random_uuid(), now() - interval '90 seconds'), "
            "('refresh_meter', gen_random_uuid(), now() + interval '1 hour')"
        )
        await conn.exec_driver_sql(
            "INSERT INTO sync_runs (mode, status, trigger, started_at, finished_at) VALUES "
            "('full', 'succeeded', 'cli', now() - interval '1 hour', now() - interval '50 minutes')"
        )
    text = (await metrics.render(metrics.DatabaseGauges(engine, "api"))).decode()
    found = samples(text)
    assert found[("meter_sync_job_queue_depth", ())] == 2
    assert 89 < found[("meter_sync_job_queue_oldest_age_seconds", ())] < 200
    age = found[("meter_sync_sync_last_success_age_seconds", (("mode", "full"),))]
    assert 2900 < age < 3100


def test_worker_wires_leap_calls_into_metrics(database_url: str) -> None:
    settings: Settings = make_settings(database_url, leap_api_key="k")
    worker = Worker(settings, None, None)  # type: ignore[arg-type]
    assert worker.client()._on_call is metrics.leap_call
    before = REGISTRY.get_sample_value(
        "meter_sync_leap_api_calls_total", {"endpoint": "get_meter", "status": "429"}
    )
    metrics.leap_call("get_meter", 429, 0.2)
    after = REGISTRY.get_sample_value(
        "meter_sync_leap_api_calls_total", {"endpoint": "get_meter", "status": "429"}
    )
    assert after == (before or 0) + 1


_CHILD = """
import sys
from app import metrics
metrics.observe_delivery("meter.created", "accepted", 0.003, 202)
metrics.observe_delivery("unknown", "unauthorized", 0.001, 401)
metrics.sync_run_ended("delta", "succeeded", 12.0)
if sys.argv[1] == "render":
    import asyncio
    sys.stdout.write(asyncio.run(metrics.render(None)).decode())
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _CHILD, "count"], env=env, cwd=ROOT, check=True)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, "render"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = samples(out)
    key = (("outcome", "accepted"), ("type", "meter.created"))
    assert found[("meter_sync_webhook_deliveries_total", key)] == 3
    assert found[("meter_sync_webhook_receive_seconds_count", ())] == 6
    assert found[("meter_sync_webhook_answers_total", (("status", "401"),))] == 3
    assert found[("meter_sync_sync_runs_total", (("mode", "delta"), ("outcome", "succeeded")))] == 3


async def test_apply_failures_counted_on_retry(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    event_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO webhook_events (webhook_event_id, event_type, status, body, "
            "body_sha256, body_size, next_attempt_at) "
            "VALUES ($1::uuid, 'meter.created', 'failed', NULL, '\\x00', 0, now())",
            (event_id,),
        )
    before = REGISTRY.get_sample_value(
        "meter_sync_webhook_apply_failures_total", {"source": "retry"}
    )
    assert await Worker(settings, engine, sessions).retry_failed_events() == 1
    after = REGISTRY.get_sample_value(
        "meter_sync_webhook_apply_failures_total", {"source": "retry"}
    )
    assert after == (before or 0) + 1
    assert (await rows(engine, "SELECT status FROM webhook_events"))[0].status == "dead"
