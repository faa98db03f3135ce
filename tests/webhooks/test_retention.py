"""Retention: old webhook bodies are pruned by the worker, the rows (and dedupe) stay."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.webhooks import retention as retention_module
from app.worker import Worker
from tests.support import events
from tests.support.db import rows, scalar
from tests.support.http import deliver
from tests.support.settings import make_settings


async def _age(engine: AsyncEngine, event_ids: list[str], days: int) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "UPDATE webhook_events SET received_at = now() - make_interval(days => $1) "
            "WHERE webhook_event_id = ANY($2::uuid[])",
            (days, event_ids),
        )


async def _prune_all(worker: Worker) -> None:
    while await worker.retention.prune_batch():
        pass


async def test_old_bodies_are_pruned_rows_kept_and_redelivery_is_duplicate(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old_ids = [str(uuid.uuid4()) for _ in range(3)]
    new_id = str(uuid.uuid4())
    old_bodies = [events.body(events.meter_created(), event_id) for event_id in old_ids]
    for body in old_bodies:
        assert (await deliver(client, body)).status_code == 202
    assert (await deliver(client, events.body(events.meter_created(), new_id))).status_code == 202
    await _age(engine, old_ids, settings.event_retention_days + 1)

    await _prune_all(Worker(settings, engine, sessions, name="retention-test"))

    found = {
        str(r.webhook_event_id): r
        for r in await rows(
            engine, "SELECT webhook_event_id, body, body_sha256, status FROM webhook_events"
        )
    }
    assert set(found) == {*old_ids, new_id}  # every id kept
    assert all(found[i].body is None for i in old_ids)
    assert all(found[i].body_sha256 for i in old_ids)
    assert found[new_id].body is not None  # younger than the retention: untouched

    response = await deliver(client, old_bodies[0])
    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"
    assert (
        await scalar(
            engine,
            "SELECT duplicate_deliveries FROM webhook_events WHERE webhook_event_id = :id",
            id=old_ids[0],
        )
        == 1
    )


async def test_pruning_walks_in_batches_and_spares_events_awaiting_retry(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retention_module, "BATCH", 2)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for event_id in ids:
        assert (await deliver(client, events.body(events.meter_created(), event_id))).is_success
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "UPDATE webhook_events SET status = 'failed' WHERE webhook_event_id = $1::uuid",
            (ids[1],),
        )
    await _age(engine, ids[:4], 40)
    worker = Worker(settings, engine, sessions, name="retention-test")

    batches = 0
    while await worker.retention.prune_batch():
        batches += 1
    assert batches >= 1  # more than one statement was needed

    bodies = {
        str(r.webhook_event_id): r.body
        for r in await rows(engine, "SELECT webhook_event_id, body FROM webhook_events")
    }
    assert [bodies[i] is None for i in ids] == [True, False, True, True, False]


def test_retention_days_is_validated(database_url: str) -> None:
    assert make_settings(database_url).event_retention_days == 30
    with pytest.raises(ValidationError):
        make_settings(database_url, event_retention_days=0)
