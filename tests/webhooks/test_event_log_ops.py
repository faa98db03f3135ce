"""The event log for ops: several statuses in one filter, and replays that keep the short
error the receiver stored."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support import events
from tests.support.http import deliver, ops_auth


async def _ids(client: httpx.AsyncClient, status: str) -> set[str]:
    response = await client.get("/v1/webhook-events", params={"status": status}, headers=ops_auth())
    assert response.status_code == 200, response.text
    return {e["webhook_event_id"] for e in response.json()["items"]}


async def test_several_statuses_in_one_filter(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied, dead, ignored, failed = (str(uuid.uuid4()) for _ in range(4))
    assert (await deliver(client, events.body(events.meter_created(), applied))).status_code == 202
    bad = events.meter_created(region="MARS")
    assert (await deliver(client, events.body(bad, dead))).status_code == 422
    unknown = {"webhook_event_type": "SOMETHING_NEW", "meter_id": str(uuid.uuid4())}
    assert (await deliver(client, events.body(unknown, ignored))).status_code == 202

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr("app.webhooks.repository.store_meter_event", broken)
    assert (await deliver(client, events.body(events.meter_created(), failed))).status_code == 202
    monkeypatch.undo()

    assert await _ids(client, "failed,dead") == {failed, dead}
    assert await _ids(client, "dead") == {dead}
    assert await _ids(client, "dead, ignored ,applied") == {dead, ignored, applied}
    everything = await client.get("/v1/webhook-events", headers=ops_auth())
    assert len(everything.json()["items"]) == 4


@pytest.mark.parametrize("status", ["bogus", "failed,bogus", "failed,", ""])
async def test_unknown_status_is_422_naming_the_allowed_ones(
    client: httpx.AsyncClient, status: str
) -> None:
    response = await client.get("/v1/webhook-events", params={"status": status}, headers=ops_auth())
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "received, applied, failed, ignored, dead" in detail


async def test_replay_keeps_the_short_error_the_receiver_stored(
    client: httpx.AsyncClient,
) -> None:
    event_id = str(uuid.uuid4())
    bad = events.meter_created(region="MARS", meter_id="123")
    assert (await deliver(client, events.body(bad, event_id))).status_code == 422
    stored = (await client.get(f"/v1/webhook-events/{event_id}", headers=ops_auth())).json()
    assert stored["status"] == "dead"

    replayed = await client.post(f"/v1/webhook-events/{event_id}/replay", headers=ops_auth())
    assert replayed.status_code == 200
    after = replayed.json()
    assert after["status"] == "dead"
    assert after["attempts"] == stored["attempts"] + 1
    # The same one line as on receipt, not pydantic's multi-line dump.
    assert after["error"] == stored["error"]
    assert "\n" not in after["error"]
    assert "meter_id: Input should be a valid UUID" in after["error"]
    assert "validation error" not in after["error"]
    assert "errors.pydantic.dev" not in after["error"]
