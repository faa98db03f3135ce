"""The OpenAPI document as an ops person reads it, and the values the filters check."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.support import events
from tests.support.http import deliver, ops_auth, read_auth


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    loaded: dict[str, Any] = (await client.get("/openapi.json")).json()
    return loaded


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()
    ]


def test_operation_ids_are_readable_names(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation_id), operation_id
        assert "v1" not in operation_id
    assert {
        "get_meter_participation",
        "get_meter_enrollment",
        "get_group_roster",
        "list_webhook_events",
        "get_sync_status",
        "receive_leap_webhook",
    } <= set(ids)


def test_every_parameter_is_described(document: dict[str, Any]) -> None:
    for path, method, op in _operations(document):
        for parameter in op.get("parameters", []):
            described = parameter.get("description") or parameter["schema"].get("description")
            assert described, f"{method} {path} {parameter['name']}"


def test_every_cursor_is_a_string(document: dict[str, Any]) -> None:
    cursors = [
        (path, parameter["schema"])
        for path, _, op in _operations(document)
        for parameter in op.get("parameters", [])
        if parameter["name"] == "cursor"
    ]
    assert {path for path, _ in cursors} >= {
        "/v1/meters",
        "/v1/webhook-events",
        "/v1/groups/{market_group_id}/meters",
        "/v1/dispatches",
    }
    for path, schema in cursors:
        types = {option.get("type") for option in schema.get("anyOf", [schema])} - {"null"}
        assert types == {"string"}, path


def test_every_json_answer_has_a_real_example(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for path, method, op in _operations(document):
        for code, answer in op["responses"].items():
            content = answer.get("content", {}).get("application/json")
            if not code.startswith("2") or content is None or path == "/webhooks/leap":
                continue
            schema = content["schema"]
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref", "")
            model = schemas.get(ref.rsplit("/", 1)[-1], {})
            example = content.get("example") or (model.get("examples") or [None])[0]
            assert example, f"{method} {path} {code}"
            assert '"string"' not in json.dumps(example), f"{method} {path}"


async def test_docs_keep_authorize_and_say_where_the_key_is(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    page = (await client.get("/docs")).text
    assert '"persistAuthorization": true' in page
    description = document["info"]["description"]
    assert ".meter-sync/credentials.json" in description
    assert "API_KEYS" in description


async def test_event_detail_shows_a_json_body_as_json(client: httpx.AsyncClient) -> None:
    envelope = events.envelope(events.meter_created())
    body = json.dumps(envelope).encode()
    assert (await deliver(client, body)).status_code == 202
    event_id = envelope["webhook_event_id"]
    detail = (await client.get(f"/v1/webhook-events/{event_id}", headers=ops_auth())).json()
    assert detail["body_json"] == envelope
    assert detail["body"] == body.decode()


@pytest.mark.parametrize(
    ("query", "allowed"),
    [
        ("enrollment_status=active", "'ACTIVE'"),
        ("transmission_region=CAISOO", "'CAISO'"),
    ],
)
async def test_unknown_filter_values_are_422_naming_the_allowed_ones(
    client: httpx.AsyncClient, query: str, allowed: str
) -> None:
    answer = await client.get(f"/v1/meters?{query}", headers=read_auth())
    assert answer.status_code == 422
    assert allowed in answer.text
    good = query.split("=")[0] + "=" + allowed.strip("'")
    assert (await client.get(f"/v1/meters?{good}", headers=read_auth())).status_code == 200


async def test_event_status_filter_stays_checked(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/webhook-events?status=broken", headers=ops_auth())
    assert answer.status_code == 422
    answer = await client.get("/v1/webhook-events?cursor=abc", headers=ops_auth())
    assert answer.status_code == 422


async def test_roster_names_its_group_and_groups_carry_region_and_zone(
    client: httpx.AsyncClient,
) -> None:
    group = "406720c2-0175-4137-9ff1-1641702292d4"
    for payload in (
        events.meter_created(),
        events.group_updated(
            [events.CAISO_METER], start="2024-10-01T07:00:00Z", end="2024-10-31T07:00:00Z"
        ),
    ):
        assert (await deliver(client, events.body(payload))).status_code == 202
    roster = (
        await client.get(f"/v1/groups/{group}/meters?trade_date=2024-10-10", headers=read_auth())
    ).json()
    assert roster["market_group_name"] == "PGSB_1_PDRP68"
    assert [m["meter_id"] for m in roster["items"]] == [events.CAISO_METER]
    groups = (await client.get("/v1/groups?trade_date=2024-10-10", headers=read_auth())).json()
    [item] = groups["items"]
    assert item["transmission_region"] == "CAISO"
    assert item["time_zone"] == "America/Los_Angeles"
    bad = await client.get(f"/v1/groups/{group}/meters?cursor=nope", headers=read_auth())
    assert bad.status_code == 422
