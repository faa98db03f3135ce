"""POST /webhooks/leap: every row of the contract's receiver table, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.support import events
from tests.support.db import scalar
from tests.support.http import JSON, deliver, ops_auth
from tests.support.live import LiveApp
from tests.support.settings import WEBHOOK_SECRET, WEBHOOK_SECRET_2, make_settings


async def stored(engine: AsyncEngine) -> int:
    return int(await scalar(engine, "SELECT count(*) FROM webhook_events"))


async def test_accepted_event_is_committed_before_the_answer(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id = str(uuid.uuid4())
    response = await deliver(client, events.body(events.meter_created(), event_id))
    assert response.status_code == 202
    assert response.json() == {"webhook_event_id": event_id, "status": "accepted"}
    status = await scalar(
        engine, "SELECT status FROM webhook_events WHERE webhook_event_id = :id", id=event_id
    )
    assert status == "applied"
    assert await scalar(engine, "SELECT count(*) FROM meters") == 1


@pytest.mark.parametrize(
    "secret",
    [
        None,
        "",
        "wrong",
        WEBHOOK_SECRET[:-1],
        WEBHOOK_SECRET + "x",
        "\xff\xfe".encode("latin-1"),
        b"\x80\x81" * 32,
        "x" * 10_000,
    ],
    ids=["missing", "empty", "wrong", "prefix", "longer", "high-bytes", "non-utf8-bytes", "huge"],
)
async def test_bad_secret_is_401_with_one_body_and_nothing_stored(
    client: httpx.AsyncClient, engine: AsyncEngine, secret: str | bytes | None
) -> None:
    headers = [(b"Content-Type", b"application/json")]
    if secret is not None:
        headers.append(
            (b"X-Webhook-Secret", secret if isinstance(secret, bytes) else secret.encode())
        )
    response = await client.post(
        "/webhooks/leap", content=events.body(events.meter_created()), headers=headers
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "webhook secret missing or not accepted",
    }
    assert await stored(engine) == 0


async def test_two_secrets_both_accepted_then_old_refused_after_removal(
    live_app: LiveApp, engine: AsyncEngine
) -> None:
    from pydantic import SecretStr

    both = [SecretStr(WEBHOOK_SECRET), SecretStr(WEBHOOK_SECRET_2)]
    async with live_app(leap_webhook_secrets=both) as (_, c):
        assert (
            await deliver(c, events.body(events.meter_created()), WEBHOOK_SECRET)
        ).status_code == 202
        assert (
            await deliver(c, events.body(events.meter_created()), WEBHOOK_SECRET_2)
        ).status_code == 202
    async with live_app(leap_webhook_secrets=[SecretStr(WEBHOOK_SECRET_2)]) as (_, c):
        assert (
            await deliver(c, events.body(events.meter_created()), WEBHOOK_SECRET)
        ).status_code == 401
        assert (
            await deliver(c, events.body(events.meter_created()), WEBHOOK_SECRET_2)
        ).status_code == 202
    assert await stored(engine) == 3


async def test_custom_header_name_is_honoured(live_app: LiveApp) -> None:
    async with live_app(leap_webhook_header="X-Leap-Token") as (_, c):
        content = events.body(events.meter_created())
        ok = await c.post(
            "/webhooks/leap", content=content, headers={"X-Leap-Token": WEBHOOK_SECRET, **JSON}
        )
        assert ok.status_code == 202
        refused = await deliver(c, events.body(events.meter_created()))
        assert refused.status_code == 401


@pytest.fixture
def small_limit(database_url: str) -> Settings:
    return make_settings(database_url, webhook_max_body_bytes=2048)


async def test_content_length_over_limit_is_413(
    live_app: LiveApp, small_limit: Settings, engine: AsyncEngine
) -> None:
    async with live_app(small_limit) as (_, c):
        payload = events.group_updated([str(uuid.uuid4()) for _ in range(100)])
        response = await deliver(c, events.body(payload))
    assert response.status_code == 413
    assert await stored(engine) == 0


async def test_chunked_body_growing_past_limit_is_413(
    live_app: LiveApp, small_limit: Settings, engine: AsyncEngine
) -> None:
    payload = events.body(events.group_updated([str(uuid.uuid4()) for _ in range(100)]))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 500):
            yield payload[i : i + 500]

    async with live_app(small_limit) as (_, c):
        response = await c.post(
            "/webhooks/leap",
            content=chunks(),
            headers={"X-Webhook-Secret": WEBHOOK_SECRET, **JSON},
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        # A chunked body under the limit is accepted whole.
        small = events.body(events.meter_created())

        async def small_chunks() -> AsyncIterator[bytes]:
            yield small[:10]
            yield small[10:]

        ok = await c.post(
            "/webhooks/leap",
            content=small_chunks(),
            headers={"X-Webhook-Secret": WEBHOOK_SECRET, **JSON},
        )
        assert ok.status_code == 202
    assert await stored(engine) == 1


# No Content-Type at all is read as JSON (tests/leap_rules/test_liberal_reading.py).
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
)
async def test_non_json_content_type_is_415(
    client: httpx.AsyncClient, engine: AsyncEngine, content_type: str | None
) -> None:
    headers = {"X-Webhook-Secret": WEBHOOK_SECRET}
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post(
        "/webhooks/leap", content=events.body(events.meter_created()), headers=headers
    )
    assert response.status_code == 415
    assert await stored(engine) == 0


async def test_json_content_type_with_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/webhooks/leap",
        content=events.body(events.meter_created()),
        headers={
            "X-Webhook-Secret": WEBHOOK_SECRET,
            "Content-Type": "application/json; charset=utf-8",
        },
    )
    assert response.status_code == 202


EID = str(uuid.uuid4())
BAD_BODIES = {
    "not-json": b"{not json",
    "empty": b"",
    "invalid-utf8": b'{"webhook_event_id": "\xff\xfe", "payload": {}}',
    "duplicate-keys": (
        b'{"webhook_event_id": "%s", "webhook_event_id": "%s", "payload": {}}'
        % (EID.encode(), EID.encode())
    ),
    "nan": b'{"webhook_event_id": "%s", "payload": {"x": NaN}}' % EID.encode(),
    "infinity": b'{"webhook_event_id": "%s", "payload": {"x": -Infinity}}' % EID.encode(),
    "float-overflow": b'{"webhook_event_id": "%s", "payload": {"x": 1e999}}' % EID.encode(),
    "depth-65": b'{"webhook_event_id": "%s", "payload": %s}'
    % (EID.encode(), b"[" * 64 + b"]" * 64),
    "depth-10000": b"[" * 10_000 + b"]" * 10_000,
    "big-int": b'{"webhook_event_id": "%s", "payload": {"x": %s}}' % (EID.encode(), b"9" * 4301),
    "bom": b"\xef\xbb\xbf" + events.body(events.meter_created()),
}


@pytest.mark.parametrize("raw", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
async def test_malformed_json_is_400_and_nothing_stored(
    client: httpx.AsyncClient, engine: AsyncEngine, raw: bytes
) -> None:
    response = await deliver(client, raw)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await stored(engine) == 0


async def test_depth_64_and_4300_digits_are_still_json(client: httpx.AsyncClient) -> None:
    nested = (
        b'{"webhook_event_id": "%s", "payload": {"webhook_event_type": "x.y", "a": %s, "n": %s}}'
        % (
            str(uuid.uuid4()).encode(),
            b"[" * 62 + b"]" * 62,
            b"9" * 4300,
        )
    )
    response = await deliver(client, nested)
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"payload": events.meter_created()},
        {"webhook_event_id": "not-a-uuid", "payload": events.meter_created()},
        {"webhook_event_id": 42, "payload": events.meter_created()},
        {"webhook_event_id": str(uuid.uuid4())},
        {"webhook_event_id": str(uuid.uuid4()), "payload": {"meter_id": events.CAISO_METER}},
        {"webhook_event_id": str(uuid.uuid4()), "payload": {"webhook_event_type": "bad\ntype"}},
    ],
    ids=["array", "no-id", "non-uuid", "numeric-id", "no-payload", "no-type", "odd-type"],
)
async def test_unusable_envelope_is_422_and_nothing_stored(
    client: httpx.AsyncClient, engine: AsyncEngine, doc: object
) -> None:
    response = await deliver(client, json.dumps(doc).encode())
    assert response.status_code == 422
    assert await stored(engine) == 0


async def test_invalid_payload_is_422_and_kept_as_dead_letter(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id = str(uuid.uuid4())
    bad = events.meter_created(region="MARS")
    response = await deliver(client, events.body(bad, event_id))
    assert response.status_code == 422
    problem = response.json()
    assert problem["status"] == 422
    assert any("transmission_region" in e["loc"] for e in problem["errors"])
    assert await scalar(engine, "SELECT count(*) FROM meters") == 0
    seen = await client.get(f"/v1/webhook-events/{event_id}", headers=ops_auth())
    assert seen.status_code == 200
    assert seen.json()["status"] == "dead"
    assert "transmission_region" in seen.json()["error"]
    assert json.loads(seen.json()["body"])["payload"]["transmission_region"] == "MARS"


@pytest.mark.parametrize(
    "payload",
    [
        events.meter_created(partner_reference="nul\x00ref"),
        events.meter_created(meter_id="123"),
        events.group_updated(["not-a-uuid"]),
        {**events.group_updated([]), "start_date_time": "2024-10-01T07:00:00"},
        events.participation(preference="MAYBE"),
        {k: v for k, v in events.required_actions().items() if k != "required_actions"},
        events.connect_session(status="OPENED"),
        events.authorization(utility=""),
        {**events.group_updated([]), "market_group_name": "\ud800"},
    ],
    ids=[
        "nul-ref",
        "bad-meter-id",
        "bad-member",
        "naive-time",
        "bad-preference",
        "no-actions",
        "bad-status",
        "empty-utility",
        "lone-surrogate",
    ],
)
async def test_schema_violations_are_dead_letters(
    client: httpx.AsyncClient, engine: AsyncEngine, payload: dict[str, object]
) -> None:
    event_id = str(uuid.uuid4())
    response = await deliver(client, events.body(payload, event_id))
    assert response.status_code == 422
    assert (
        await scalar(
            engine, "SELECT status FROM webhook_events WHERE webhook_event_id = :id", id=event_id
        )
        == "dead"
    )


async def test_unknown_event_type_is_202_and_kept_as_ignored(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id = str(uuid.uuid4())
    payload = {"webhook_event_type": "meter.deleted", "meter_id": events.CAISO_METER}
    response = await deliver(client, events.body(payload, event_id))
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert (
        await scalar(
            engine, "SELECT status FROM webhook_events WHERE webhook_event_id = :id", id=event_id
        )
        == "ignored"
    )
    again = await deliver(client, events.body(payload, event_id))
    assert again.status_code == 200


async def test_duplicate_id_is_200_and_effect_not_repeated(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id = str(uuid.uuid4())
    content = events.body(events.connect_session(), event_id)
    assert (await deliver(client, content)).status_code == 202
    again = await deliver(client, content)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert await scalar(engine, "SELECT count(*) FROM partner_events") == 1
    assert (
        await scalar(
            engine,
            "SELECT duplicate_deliveries FROM webhook_events WHERE webhook_event_id = :id",
            id=event_id,
        )
        == 1
    )


async def test_same_id_different_body_is_flagged_and_first_kept(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id = str(uuid.uuid4())
    first = events.body(events.global_status(status="ELIGIBLE"), event_id)
    second = events.body(events.global_status(status="INELIGIBLE"), event_id)
    assert (await deliver(client, first)).status_code == 202
    assert (await deliver(client, second)).status_code == 200
    row = (await client.get(f"/v1/webhook-events/{event_id}", headers=ops_auth())).json()
    assert row["conflicting_deliveries"] == 1
    assert json.loads(row["body"])["payload"]["global_enrollment_status"] == "ELIGIBLE"
    assert await scalar(engine, "SELECT enrollment_status FROM meters") == "ELIGIBLE"


async def test_fifty_simultaneous_deliveries_of_one_id_store_one_row_one_effect(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event_id = str(uuid.uuid4())
    content = events.body(events.authorization(status="COMPLETED"), event_id)
    responses = await asyncio.gather(*(deliver(client, content) for _ in range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == 1
    assert codes.count(200) == 49
    assert await stored(engine) == 1
    assert await scalar(engine, "SELECT count(*) FROM partner_events") == 1
    assert await scalar(engine, "SELECT duplicate_deliveries FROM webhook_events") == 49


@pytest.mark.parametrize(
    ("target", "payload"),
    [
        ("app.webhooks.repository.store_meter_event", events.meter_created()),
        ("app.webhooks.service.apply_group_updated", events.group_updated([events.CAISO_METER])),
    ],
    ids=["meter-event", "group-event"],
)
async def test_apply_failure_still_stores_event_as_failed_and_answers_2xx(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    payload: dict[str, object],
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("simulated bug in an effect")

    monkeypatch.setattr(target, broken)
    event_id = str(uuid.uuid4())
    response = await deliver(client, events.body(payload, event_id))
    assert response.status_code == 202
    assert response.json()["status"] == "failed"
    row = (await client.get(f"/v1/webhook-events/{event_id}", headers=ops_auth())).json()
    assert row["status"] == "failed"
    assert "simulated bug" in row["error"]
    assert await scalar(engine, "SELECT count(*) FROM meters") == 0
    assert await scalar(engine, "SELECT count(*) FROM group_memberships") == 0
    # A redelivery is a duplicate: the worker retries the stored event, not Leap.
    monkeypatch.undo()
    assert (await deliver(client, events.body(payload, event_id))).status_code == 200


async def test_database_unreachable_is_503_and_never_2xx(live_app: LiveApp) -> None:
    # Port 9 (discard) on localhost refuses connections: PostgreSQL is "down".
    down = "postgresql+asyncpg://postgres@127.0.0.1:9/none"
    async with live_app(database_url=down, client_timeout=10) as (_, c):
        response = await deliver(c, events.body(events.meter_created()))
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        ready = await c.get("/readyz")
        assert ready.status_code == 503


async def test_database_hanging_is_503_not_a_hang(live_app: LiveApp) -> None:
    # A listener that accepts and never speaks: the connect timeout must end the wait.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none"
    try:
        async with live_app(database_url=hung, client_timeout=10) as (_, c):
            response = await deliver(c, events.body(events.meter_created()))
            assert response.status_code == 503
    finally:
        server.close()


async def test_concurrent_deliveries_of_a_failing_event_store_one_failure(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("simulated bug in an effect")

    monkeypatch.setattr("app.webhooks.repository.store_meter_event", broken)
    content = events.body(events.meter_created())
    answers = await asyncio.gather(*(deliver(client, content) for _ in range(10)))
    outcomes = sorted(a.json()["status"] for a in answers)
    assert outcomes == ["duplicate"] * 9 + ["failed"]
    assert await stored(engine) == 1
