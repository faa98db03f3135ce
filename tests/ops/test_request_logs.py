"""Request ids and webhook event ids on every log line of a request; still one line each."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app import logs
from tests.support import events
from tests.support.http import secret_headers


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Root logging as `meter-sync serve` sets it up (JSON lines), into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines_for(buffer: io.StringIO, request_id: str) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in buffer.getvalue().splitlines() if line]
    return [e for e in entries if e.get("request_id") == request_id]


async def test_log_lines_carry_the_request_id_and_event_id_and_stay_one_line(
    client: httpx.AsyncClient, captured: io.StringIO
) -> None:
    event_id = str(uuid.uuid4())
    hostile = 'x\n{"level": "error", "message": "forged"}\r\x1b[31m\u2028'
    # An event type meter-sync does not know yet: stored as ignored, whatever it holds.
    payload = {"webhook_event_type": "meter.future-thing", "note": hostile, hostile: [hostile]}
    response = await client.post(
        "/webhooks/leap",
        content=events.body(payload, event_id),
        headers={**secret_headers(), "X-Request-ID": "req-abc.123"},
    )
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert response.headers["x-request-id"] == "req-abc.123"

    text = captured.getvalue()
    mine = _lines_for(captured, "req-abc.123")
    assert mine, text
    assert all(line["webhook_event_id"] == event_id for line in mine)
    assert any(line["message"] == "webhook ignored" for line in mine)
    # Every physical line is one JSON document: nothing in the payload split one.
    entries = [json.loads(line) for line in text.splitlines()]
    assert all(entry["message"] != "forged" for entry in entries)


async def test_request_id_is_generated_when_missing_or_unusable(
    client: httpx.AsyncClient, captured: io.StringIO
) -> None:
    response = await client.get("/healthz")
    generated = response.headers["x-request-id"]
    assert len(generated) == 32
    int(generated, 16)

    for unusable in (b"has spaces", "caf\u00e9".encode(), b"x" * 200, b"<a;b>"):
        bad = await client.get("/healthz", headers=[(b"X-Request-ID", unusable)])
        assert len(bad.headers["x-request-id"]) == 32, unusable

    refused = await client.post(
        "/webhooks/leap", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 401
    assert refused.headers["x-request-id"]


async def test_log_line_outside_a_request_has_no_request_id(captured: io.StringIO) -> None:
    logging.getLogger("meter_sync.test").info("no request here")
    entry = json.loads(captured.getvalue().splitlines()[-1])
    assert "request_id" not in entry
    assert "webhook_event_id" not in entry
