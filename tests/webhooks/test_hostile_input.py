"""Hostile deliveries beyond the receiver table: slow bodies, control characters, oddities."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import events
from tests.support.db import scalar
from tests.support.http import deliver, read_auth
from tests.support.live import LiveServer
from tests.support.settings import WEBHOOK_SECRET

NASTY = "a\nb\r\nc\x1b[31m\u2028\u202e\t\x07end"


async def test_slow_drip_body_is_refused_not_waited_on(
    live: LiveServer, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.webhooks.body.BODY_READ_TIMEOUT_S", 0.5)
    body = events.body(events.meter_created())
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    head = (
        "POST /webhooks/leap HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Webhook-Secret: {WEBHOOK_SECRET}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()

    async def drip() -> None:
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)

    dripping = asyncio.create_task(drip())
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        dripping.cancel()
        writer.close()
    assert b" 408 " in status_line
    assert await scalar(engine, "SELECT count(*) FROM webhook_events") == 0


async def test_control_characters_in_every_string_field_are_kept_verbatim(
    client: httpx.AsyncClient,
) -> None:
    reference = "site\n\r\x1b\u2028\u202e\t\x07end"  # Leap's pattern refuses brackets
    meter = str(uuid.uuid4())
    group = str(uuid.uuid4())
    action = {**events.authorize_action(), "action_description": NASTY, "action_code": NASTY}
    payloads = [
        events.meter_created(meter, reference),
        events.required_actions(meter, [action]),
        events.group_updated([meter], group, name=NASTY),
        events.authorization(reference, utility=NASTY[:20]),
        events.connect_session(reference),
    ]
    for payload in payloads:
        response = await deliver(client, events.body(payload))
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "accepted"
    shown = (await client.get(f"/v1/meters/{meter}", headers=read_auth())).json()
    assert shown["partner_reference"] == reference
    view = (await client.get(f"/v1/meters/{meter}/enrollment", headers=read_auth())).json()
    assert view["status_reasons"] == [NASTY]
    roster = (
        await client.get(f"/v1/groups/{group}/meters?trade_date=2024-10-15", headers=read_auth())
    ).json()
    assert roster["items"] == [{"meter_id": meter, "partner_reference": reference}]
    partner = await client.get(
        f"/v1/partner-references/{quote(reference, safe='')}", headers=read_auth()
    )
    assert partner.status_code == 200
    assert partner.json()["partner_reference"] == reference
    assert partner.json()["authorization_utility"] == NASTY[:20]


@pytest.mark.parametrize(
    "raw",
    [
        b"null",
        b"0",
        b'"string"',
        b"{}",
        b'{"webhook_event_id": null, "payload": null}',
        b'{"webhook_event_id": "' + b"a" * 100_000 + b'", "payload": {}}',
        json.dumps(
            {"webhook_event_id": str(uuid.uuid4()), "payload": {"webhook_event_type": ""}}
        ).encode(),
        json.dumps(
            {"webhook_event_id": str(uuid.uuid4()), "payload": {"webhook_event_type": ["x"]}}
        ).encode(),
        json.dumps(
            {"webhook_event_id": str(uuid.uuid4()), "payload": {"webhook_event_type": "t" * 129}}
        ).encode(),
    ],
)
async def test_odd_documents_are_4xx_and_store_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, raw: bytes
) -> None:
    response = await deliver(client, raw)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    assert await scalar(engine, "SELECT count(*) FROM webhook_events") == 0


async def test_huge_roster_of_unknown_shape_members_is_a_dead_letter(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    payload = events.group_updated([str(uuid.uuid4()) for _ in range(1000)] + [42])  # type: ignore[list-item]
    response = await deliver(client, events.body(payload))
    assert response.status_code == 422
    assert await scalar(engine, "SELECT count(*) FROM group_memberships") == 0
    assert await scalar(engine, "SELECT status FROM webhook_events") == "dead"
