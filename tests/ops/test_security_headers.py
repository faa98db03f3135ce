"""Security headers on every answer, and HEAD wherever GET works (over real HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app import metrics
from app.config import Settings
from app.main import create_app
from app.response_policy import _merged, security_headers
from tests.support import events
from tests.support.http import deliver, ops_auth, read_auth
from tests.support.live import LiveServer

MISSING = uuid.UUID(int=7)
READ = read_auth()
OPS = ops_auth()

# (path, headers): every kind of GET the service answers, keyed or not, 2xx or not.
GETS = [
    ("/", {}),
    ("/healthz", {}),
    ("/readyz", {}),
    ("/metrics", {}),
    ("/docs", {}),
    ("/redoc", {}),
    ("/openapi.json", {}),
    ("/v1/meters", READ),
    ("/v1/meters", {}),
    (f"/v1/meters/{MISSING}", READ),
    ("/v1/groups", READ),
    ("/v1/sync/status", READ),
    ("/v1/sync/runs", OPS),
    ("/v1/webhook-events", OPS),
    ("/no-such-page", {}),
]


def _assert_protected_everywhere(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(("path", "headers"), GETS)
async def test_every_answer_has_nosniff_and_frame_protection(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    response = await client.get(path, headers=headers)
    _assert_protected_everywhere(response)
    # Each header once: the middleware replaces, never repeats.
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    keyed = path.startswith("/v1/")
    assert (response.headers.get("cache-control") == "no-store") is keyed


async def test_receiver_answers_are_never_stored(client: httpx.AsyncClient) -> None:
    accepted = await deliver(client, events.body(events.meter_created()))
    refused = await deliver(client, events.body(events.meter_created()), secret="x" * 20)
    not_json = await client.post("/webhooks/leap", content=b"{", headers={"X-Webhook-Secret": "y"})
    assert [accepted.status_code, refused.status_code, not_json.status_code] == [202, 401, 401]
    for response in (accepted, refused, not_json):
        assert response.headers["cache-control"] == "no-store"
        _assert_protected_everywhere(response)


@pytest.mark.parametrize(("path", "headers"), GETS)
async def test_head_answers_like_get_without_a_body(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    got = await client.get(path, headers=headers)
    head = await client.head(path, headers=headers)
    assert head.status_code == got.status_code
    assert head.content == b""
    assert head.headers.get("content-type") == got.headers.get("content-type")
    _assert_protected_everywhere(head)


async def test_head_of_a_post_only_path_is_405(client: httpx.AsyncClient) -> None:
    response = await client.head("/webhooks/leap")
    assert response.status_code == 405
    assert response.content == b""


@pytest.fixture
async def app_with_a_bug(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)

    @app.get("/v1/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    async with (
        LiveServer(app) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        yield app, http


async def test_a_500_carries_the_headers_too(
    app_with_a_bug: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, http = app_with_a_bug
    response = await http.get("/v1/bug")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    _assert_protected_everywhere(response)


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_the_workers_own_server_has_the_same_response_policy(
    engine: AsyncEngine, path: str
) -> None:
    app = metrics.worker_app(engine, "webhook-only")
    async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        got = await http.get(path)
        head = await http.head(path)
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    for response in (got, head):
        _assert_protected_everywhere(response)


async def test_the_status_pages_own_policy_is_kept(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    policies = page.headers.get_list("content-security-policy")
    assert len(policies) == 1
    # Its script nonce survives (the page would not run without it), framing stays off.
    assert "'nonce-" in policies[0]
    assert "frame-ancestors 'none'" in policies[0]
    assert page.headers["x-frame-options"] == "DENY"


def test_an_app_policy_without_frame_ancestors_gets_it() -> None:
    given = [(b"content-security-policy", b"default-src 'self'"), (b"cache-control", b"max-age=60")]
    merged = dict(_merged(given, security_headers("/v1/meters")))
    assert merged[b"content-security-policy"] == b"default-src 'self'; frame-ancestors 'none'"
    assert merged[b"cache-control"] == b"no-store"
    assert merged[b"x-content-type-options"] == b"nosniff"
