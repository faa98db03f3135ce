"""/v1/sync/status says whether sync is healthy, and why not."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import events
from tests.support.http import deliver, read_auth
from tests.support.live import LiveApp


def _codes(status: dict[str, Any]) -> set[str]:
    return {p["code"] for p in status["problems"]}


async def _run(engine: AsyncEngine, status: str, started_ago_s: int, error: str | None) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO sync_runs (mode, status, trigger, phase, started_at, finished_at, "
                "error) VALUES ('full', :status, 'schedule', 'done', "
                "now() - make_interval(secs => :ago), now() - make_interval(secs => :ago - 5), "
                ":error)"
            ),
            {"status": status, "ago": started_ago_s, "error": error},
        )


async def test_webhook_only_is_healthy_once_events_arrive(client: httpx.AsyncClient) -> None:
    first = (await client.get("/v1/sync/status", headers=read_auth())).json()
    assert first["healthy"] is False
    assert _codes(first) == {"webhooks_quiet"}
    assert "no webhook event received yet" in first["problems"][0]["detail"]
    assert first["lag_seconds"] is None  # webhook-only: there is no reconciliation

    assert (await deliver(client, events.body(events.meter_created()))).status_code == 202
    after = (await client.get("/v1/sync/status", headers=read_auth())).json()
    assert after["healthy"] is True
    assert after["problems"] == []
    # Existing fields stay.
    for field in ("mode", "detail", "last_run", "queued_jobs", "failed_events", "dead_events"):
        assert field in after


async def test_every_problem_is_named_with_what_to_do(
    live_app: LiveApp, engine: AsyncEngine
) -> None:
    async with live_app(
        leap_api_key=SecretStr("unused-key-1234"),
        webhook_quiet_seconds=600,
        sync_lag_max_seconds=3600,
    ) as (_, c):
        # A dead letter (invalid payload) and an old event.
        bad = events.body(events.meter_created(region="MARS"))
        assert (await deliver(c, bad)).status_code == 422
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE webhook_events SET received_at = now() - interval '2 hours'")
            )
        # The last successful run started 2 h ago, and the newest run failed.
        await _run(engine, "succeeded", 7200, None)
        await _run(engine, "failed", 60, "page failed after retries: Leap answered 500")

        status = (await c.get("/v1/sync/status", headers=read_auth())).json()
    assert status["healthy"] is False
    assert _codes(status) == {
        "last_run_failed",
        "webhooks_quiet",
        "events_waiting",
        "sync_lagging",
    }
    details = {p["code"]: p["detail"] for p in status["problems"]}
    assert "Leap answered 500" in details["last_run_failed"]
    assert "WEBHOOK_QUIET_SECONDS=600" in details["webhooks_quiet"]
    assert "meter-sync events --status failed,dead" in details["events_waiting"]
    assert "SYNC_LAG_MAX_SECONDS=3600" in details["sync_lagging"]
    assert 7100 < status["lag_seconds"] < 7300 + 600  # since the successful run started
    assert status["dead_events"] == 1


async def test_api_mode_healthy_after_a_recent_successful_run(
    live_app: LiveApp, engine: AsyncEngine
) -> None:
    async with live_app(leap_api_key=SecretStr("unused-key-1234")) as (_, c):
        before = (await c.get("/v1/sync/status", headers=read_auth())).json()
        assert "sync_lagging" in _codes(before)  # no successful run yet
        assert before["lag_seconds"] is None
        await _run(engine, "succeeded", 30, None)
        event_id = str(uuid.uuid4())
        assert (await deliver(c, events.body(events.meter_created(), event_id))).status_code == 202
        status = (await c.get("/v1/sync/status", headers=read_auth())).json()
    assert status["healthy"] is True, status["problems"]
    assert status["lag_seconds"] is not None
    assert status["lag_seconds"] >= 30
