"""REST conventions: bearer scopes, problem+json errors, probes, OpenAPI."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests import events
from tests.helpers import deliver, ops_auth, read_auth

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/meters/{uuid.uuid4()}",
        f"/v1/meters/{uuid.uuid4()}/enrollment",
        f"/v1/meters/{uuid.uuid4()}/participation",
        "/v1/partner-references/site-1",
        f"/v1/groups/{uuid.uuid4()}/meters",
        "/v1/webhook-events",
        f"/v1/webhook-events/{uuid.uuid4()}",
    ],
)
@pytest.mark.parametrize(
    "auth", [None, "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer", "Bearer \u00ff\u00fe"]
)
async def test_missing_or_wrong_key_is_401_problem(
    client: httpx.AsyncClient, path: str, auth: str | None
) -> None:
    headers = {"Authorization": auth.encode("latin-1")} if auth else {}
    response = await client.get(path, headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == 401


async def test_read_key_lacks_ops_scope(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/webhook-events", headers=read_auth())
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert (await client.get("/v1/webhook-events", headers=ops_auth())).status_code == 200


async def test_ops_key_can_read(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/meters/{uuid.uuid4()}", headers=ops_auth())
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "path",
    [
        "/v1/meters/not-a-uuid",
        f"/v1/meters/{events.CAISO_METER}/participation?from=2024-13-01",
        f"/v1/meters/{events.CAISO_METER}/participation?from=2024-06-02&to=2024-06-01",
        f"/v1/meters/{events.CAISO_METER}/participation?from=2024-01-01&to=2026-01-01",
        f"/v1/meters/{events.CAISO_METER}/participation?from=9999-12-31",
        "/v1/groups/406720c2-0175-4137-9ff1-1641702292d4/meters?trade_date=0001-01-01",
        "/v1/groups/406720c2-0175-4137-9ff1-1641702292d4/meters?trade_date=1e-77",
        f"/v1/meters/{events.CAISO_METER}/participation?from=1717200000",
        "/v1/groups/406720c2-0175-4137-9ff1-1641702292d4/meters?limit=0",
        "/v1/groups/406720c2-0175-4137-9ff1-1641702292d4/meters?cursor=x",
        "/v1/partner-references/a%00bc",
        "/v1/webhook-events?status=weird",
        "/v1/webhook-events?cursor=-1",
    ],
)
async def test_bad_parameters_are_422_problem(client: httpx.AsyncClient, path: str) -> None:
    await deliver(client, events.body(events.meter_created()))
    await deliver(client, events.body(events.group_updated([events.CAISO_METER])))
    response = await client.get(path, headers=ops_auth())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    for path in (
        f"/v1/meters/{uuid.uuid4()}/enrollment",
        f"/v1/meters/{uuid.uuid4()}/participation",
        "/v1/partner-references/nobody-here",
        f"/v1/groups/{uuid.uuid4()}/meters",
        f"/v1/webhook-events/{uuid.uuid4()}",
    ):
        response = await client.get(path, headers=ops_auth())
        assert response.status_code == 404, path
        assert response.headers["content-type"] == PROBLEM


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_event_log_lists_with_filters_and_cursor(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await deliver(client, events.body(events.meter_created()))
    await deliver(client, events.body({"webhook_event_type": "brand.new"}))
    listed = (await client.get("/v1/webhook-events?limit=2", headers=ops_auth())).json()
    assert len(listed["items"]) == 2
    rest = (
        await client.get(f"/v1/webhook-events?cursor={listed['next_cursor']}", headers=ops_auth())
    ).json()
    assert len(rest["items"]) == 2
    assert rest["next_cursor"] is None
    ignored = (await client.get("/v1/webhook-events?status=ignored", headers=ops_auth())).json()
    assert [e["event_type"] for e in ignored["items"]] == ["brand.new"]
    created = (await client.get("/v1/webhook-events?type=meter.created", headers=ops_auth())).json()
    assert len(created["items"]) == 3


async def test_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["migration"] == "0006"


async def test_openapi_documents_bearer_auth_and_every_operation(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert operation.get("tags"), f"{method} {path} has no tag"
    assert (await client.get("/docs")).status_code == 200
