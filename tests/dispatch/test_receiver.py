"""POST /webhooks/leap/dispatch: the receiver's answer table, upserts, identity, replay."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dispatch.bodies import encode, group_body, meter_body, timeslot
from tests.support import events
from tests.support.db import rows, scalar
from tests.support.http import ops_auth, read_auth, secret_headers

PATH = "/webhooks/leap/dispatch"


def log_id(raw: bytes) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(raw).digest()[:16]))


async def post(client: httpx.AsyncClient, raw: bytes, **headers: str) -> httpx.Response:
    return await client.post(PATH, content=raw, headers={**secret_headers(), **headers})


async def stored_events(engine: AsyncEngine) -> int:
    return int(await scalar(engine, "SELECT count(*) FROM webhook_events"))


async def test_group_dispatch_accepted_logged_and_duplicate(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id = uuid.uuid4()
    raw = encode(
        group_body(uuid.uuid4(), [uuid.uuid4()], [timeslot("market_group_event_id", event_id)])
    )
    first = await post(client, raw)
    assert first.status_code == 202
    assert first.json() == {"webhook_event_id": log_id(raw), "status": "accepted"}
    again = await post(client, raw)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    event = await client.get(f"/v1/webhook-events/{log_id(raw)}", headers=ops_auth())
    assert event.json()["event_type"] == "dispatch.group"
    assert event.json()["status"] == "applied"
    assert event.json()["duplicate_deliveries"] == 1
    assert await scalar(engine, "SELECT count(*) FROM dispatches") == 1


@pytest.mark.parametrize(
    ("headers", "raw", "status"),
    [
        ({"X-Webhook-Secret": "wrong"}, b"{}", 401),
        ({"Content-Type": "text/plain"}, b"{}", 415),
        ({}, b"{not json", 400),
        ({}, b'{"a": 1, "a": 2}', 400),
        ({}, b"[]", 422),
        ({}, b'{"hello": 1}', 422),
        ({}, b'{"meter_dispatches": [], "group_dispatches": []}', 422),
    ],
    ids=["secret", "content-type", "not-json", "duplicate-keys", "array", "neither", "both"],
)
async def test_refusals_store_nothing(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    headers: dict[str, str],
    raw: bytes,
    status: int,
) -> None:
    response = await post(client, raw, **headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert await stored_events(engine) == 0


async def test_too_large_is_413(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    limit = 16 * 1024 * 1024
    response = await post(client, b"{" + b" " * (limit + 10) + b"}")
    assert response.status_code == 413
    assert await stored_events(engine) == 0


@pytest.mark.parametrize(
    "start",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "2026-07-21T00:00:00", "infinity"],
    ids=["year-1-offset", "year-9999-offset", "naive", "infinity"],
)
async def test_unholdable_instant_is_422_dead_letter(
    client: httpx.AsyncClient, engine: AsyncEngine, start: str
) -> None:
    raw = encode(
        meter_body(uuid.uuid4(), [timeslot("meter_event_id", uuid.uuid4(), start_time=start)])
    )
    response = await post(client, raw)
    assert response.status_code == 422
    assert response.json()["errors"]
    found = await rows(
        engine,
        "SELECT event_type, status FROM webhook_events WHERE webhook_event_id = :id",
        id=log_id(raw),
    )
    assert [tuple(r) for r in found] == [("dispatch.meter", "dead")]
    assert await scalar(engine, "SELECT count(*) FROM dispatches") == 0


async def test_later_body_updates_timeslot_and_cancellation_is_kept(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id, group_id = uuid.uuid4(), uuid.uuid4()
    meters = [uuid.uuid4(), uuid.uuid4()]
    first = group_body(group_id, meters, [timeslot("market_group_event_id", event_id)])
    assert (await post(client, encode(first))).status_code == 202
    update = group_body(
        group_id,
        meters[:1],
        [timeslot("market_group_event_id", event_id, energy_kw=None, cancelled=True, priority=3)],
    )
    assert (await post(client, encode(update))).status_code == 202
    assert await scalar(engine, "SELECT count(*) FROM dispatches") == 1
    hidden = await client.get("/v1/dispatches", headers=read_auth())
    assert hidden.json()["items"] == []
    listed = await client.get("/v1/dispatches?include_cancelled=true", headers=read_auth())
    [item] = listed.json()["items"]
    assert item["cancelled"] is True
    assert item["energy_kw"] is None
    assert item["priority"] == 3
    assert item["meter_count"] == 1
    # The replaced 2-meter list is no longer kept.
    assert await scalar(engine, "SELECT count(*) FROM dispatch_set_meters") == 1


async def test_meter_event_id_naming_several_meters(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id = uuid.uuid4()
    one, two = uuid.uuid4(), uuid.uuid4()
    for meter in (one, two):
        raw = encode(meter_body(meter, [timeslot("meter_event_id", event_id)]))
        assert (await post(client, raw)).status_code == 202
    meters = await client.get(f"/v1/dispatches/{event_id}/meters", headers=read_auth())
    assert {m["meter_id"] for m in meters.json()["items"]} == {str(one), str(two)}
    detail = await client.get(f"/v1/dispatches/{event_id}", headers=read_auth())
    assert detail.json()["meter_count"] == 2
    assert detail.json()["meter_id"] is None
    assert detail.json()["drift"] is None


async def test_integration_test_hidden_unless_asked_and_never_overwrites_real(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id, meter = uuid.uuid4(), uuid.uuid4()
    real = meter_body(meter, [timeslot("meter_event_id", event_id, priority=1)])
    test = meter_body(
        meter,
        [timeslot("meter_event_id", event_id, priority=9)],
        integration_test_notification=True,
    )
    assert (await post(client, encode(real))).status_code == 202
    assert (await post(client, encode(test))).status_code == 202
    default = (await client.get("/v1/dispatches", headers=read_auth())).json()["items"]
    assert [(i["priority"], i["integration_test"]) for i in default] == [(1, False)]
    everything = await client.get("/v1/dispatches?include_tests=true", headers=read_auth())
    assert sorted(i["priority"] for i in everything.json()["items"]) == [1, 9]


async def test_communication_test_is_listed_and_flagged(client: httpx.AsyncClient) -> None:
    slot = timeslot("meter_event_id", uuid.uuid4(), communication_test=True)
    assert (await post(client, encode(meter_body(uuid.uuid4(), [slot])))).status_code == 202
    [item] = (await client.get("/v1/dispatches", headers=read_auth())).json()["items"]
    assert item["communication_test"] is True


async def test_failed_apply_is_stored_and_replayable(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = encode(meter_body(uuid.uuid4(), [timeslot("meter_event_id", uuid.uuid4())]))

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug in the dispatch apply")

    # Break the apply (not the inbox) for one delivery: the body is still kept, as failed.
    monkeypatch.setattr("app.dispatch.service.apply_notification", broken)
    response = await post(client, raw)
    monkeypatch.undo()
    assert response.status_code == 202
    assert response.json()["status"] == "failed"
    replayed = await client.post(f"/v1/webhook-events/{log_id(raw)}/replay", headers=ops_auth())
    assert replayed.json()["status"] == "applied"
    assert await scalar(engine, "SELECT count(*) FROM dispatches") == 1


async def test_missing_content_type_answered_like_the_event_receiver(
    client: httpx.AsyncClient,
) -> None:
    # Both receivers share one content-type rule: a body without Content-Type is read as
    # JSON (Leap's own test webhook sends none).
    raw = encode(meter_body(uuid.uuid4(), [timeslot("meter_event_id", uuid.uuid4())]))
    secret = {"X-Webhook-Secret": secret_headers()["X-Webhook-Secret"]}
    envelope = events.body(events.meter_created(), str(uuid.uuid4()))
    dispatch = await client.post(PATH, content=raw, headers=secret)
    event = await client.post("/webhooks/leap", content=envelope, headers=secret)
    assert (dispatch.status_code, event.status_code) == (202, 202)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("energy_kw", 10**4000),
        ("energy_kw", -1e300),
        ("priority", 2**40),
        ("programs", ["CCA\x00"]),
        ("performance_compensation_cap", "\ud800"),
        ("dispatch_event_types", "standard"),
        ("end_time", "2026-07-20T00:00:00Z"),
        ("start_time", 1700000000),
    ],
    ids=["huge-int", "huge-negative", "priority-overflow", "nul", "lone-surrogate",
         "not-a-list", "end-before-start", "epoch-number"],
)  # fmt: skip
async def test_values_postgresql_cannot_hold_are_422_dead_letters(
    client: httpx.AsyncClient, engine: AsyncEngine, field: str, value: object
) -> None:
    slot = timeslot("meter_event_id", uuid.uuid4(), **{field: value})
    raw = json.dumps(meter_body(uuid.uuid4(), [slot])).encode()
    response = await post(client, raw)
    assert response.status_code == 422, response.text
    status = await scalar(
        engine, "SELECT status FROM webhook_events WHERE webhook_event_id = :id", id=log_id(raw)
    )
    assert status == "dead"
    assert await scalar(engine, "SELECT count(*) FROM dispatches") == 0
