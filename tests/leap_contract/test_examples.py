"""Leap's own webhook examples, posted to the real receiver: accepted and applied as Leap means.

Whole events come from the AsyncAPI rendering's message examples and from webhooks.yml's
test-event example (a bare payload: Leap wraps it in its envelope when it sends it).
Event types Leap gives no whole example for are assembled from the examples Leap gives
for their fields (the group window of `meter.enrollment.group.updated`, the partner
actions of `meter.enrollment.required-actions.updated`, ...). Each effect is checked
through the REST API, as a partner's service would see it.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.leap_contract.contract import (
    Example,
    examples,
    named_example,
    property_example,
    schema_example,
)
from tests.support.http import deliver, ops_auth, read_auth

ASYNC = "events-asyncapi.yml"
HOOKS = "webhooks.yml"
ENROLL = "enrollments.yml"

JSON = dict[str, Any]


def _whole_events() -> list[Example]:
    messages = [ex for ex in examples(ASYNC, kind="message") if "webhook_event_id" in ex.value]
    test_events = [
        ex
        for ex in examples(HOOKS, kind="media")
        if ex.pointer.startswith("/components/requestBodies/TestWebhookRequestBody/")
    ]
    return [*messages, *test_events]


WHOLE_EVENTS = _whole_events()


def envelope_of(ex: Example) -> JSON:
    value: JSON = ex.value
    if "webhook_event_id" in value:
        return value
    return {"webhook_event_id": ex.event_id, "payload": value}


async def post(client: httpx.AsyncClient, envelope: JSON) -> httpx.Response:
    return await deliver(client, json.dumps(envelope).encode())


async def accepted(client: httpx.AsyncClient, payload: JSON, event_id: str) -> None:
    response = await post(client, {"webhook_event_id": event_id, "payload": payload})
    assert response.status_code == 202, response.text


async def get(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await client.get(path, params=params, headers=read_auth())
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    return response.json()


# ---- what each event type must leave behind ------------------------------------------------


async def meter_created_applied(client: httpx.AsyncClient, p: JSON) -> None:
    meter = await get(client, f"/v1/meters/{p['meter_id']}")
    assert meter["partner_reference"] == p.get("partner_reference")
    assert meter["transmission_region"] == p.get("transmission_region")
    if "meter_type" in p:
        assert meter["meter_type"] == p["meter_type"]
    if p.get("partner_reference") is not None:
        partner = await get(client, f"/v1/partner-references/{p['partner_reference']}")
        assert p["meter_id"] in [m["meter_id"] for m in partner["meters"]]


async def connect_session_applied(client: httpx.AsyncClient, p: JSON) -> None:
    partner = await get(client, f"/v1/partner-references/{p['partner_reference']}")
    assert partner["connect_session_status"] == p["status"]
    assert ("connect_session", p["status"]) in [
        (h["kind"], h["status"]) for h in partner["history"]
    ]


async def authorization_applied(client: httpx.AsyncClient, p: JSON) -> None:
    partner = await get(client, f"/v1/partner-references/{p['partner_reference']}")
    assert partner["authorization_status"] == p["status"]
    assert partner["authorization_utility"] == p["utility_name"]


EFFECTS = {
    "meter.created": meter_created_applied,
    "connect_session.updated": connect_session_applied,
    "connect_session.authorization_updated": authorization_applied,
}


@pytest.mark.parametrize("ex", WHOLE_EVENTS, ids=lambda ex: ex.id)
async def test_whole_event_example_is_accepted_and_applied(
    client: httpx.AsyncClient, ex: Example
) -> None:
    envelope = envelope_of(ex)
    response = await post(client, envelope)
    assert response.status_code == 202, response.text
    payload = envelope["payload"]
    await EFFECTS[payload["webhook_event_type"]](client, payload)
    # The same delivery again (Leap retries) is a duplicate with no second effect.
    again = await post(client, envelope)
    assert again.status_code == 200, again.text


def test_every_whole_event_example_has_a_checked_effect() -> None:
    assert len(WHOLE_EVENTS) >= 4
    kinds = {envelope_of(ex)["payload"]["webhook_event_type"] for ex in WHOLE_EVENTS}
    assert kinds <= set(EFFECTS), kinds - set(EFFECTS)


async def test_discriminator_example_names_an_event_but_no_meter(client: httpx.AsyncClient) -> None:
    """The union's own example carries only its type: kept as a dead letter, nothing applied."""
    payload = schema_example(HOOKS, "WebhookEventTypeDiscriminator")
    assert set(payload) == {"webhook_event_type"}
    event_id = "0b7c2f3e-8f0a-4f57-9d43-6a1c3c1e2d10"
    response = await post(client, {"webhook_event_id": event_id, "payload": payload})
    assert response.status_code == 422, response.text
    stored = await client.get(f"/v1/webhook-events/{event_id}", headers=ops_auth())
    assert stored.status_code == 200, stored.text
    listed = await client.get("/v1/meters", headers=read_auth())
    assert listed.json()["items"] == []


# ---- events assembled from Leap's field examples -------------------------------------------

METER_ID: str = schema_example(HOOKS, "meter_id")
SIMPLE_ENROLLMENT: JSON = named_example(ENROLL, "Simple")


def group_event(meter_ids: list[str]) -> JSON:
    """Leap's group example: a May group, `start` when it becomes active, `end` inactive."""
    program = SIMPLE_ENROLLMENT["program_enrollment"][0]
    name = property_example(HOOKS, "MeterEnrollmentGroupUpdatedV1", "market_group_name")
    assert program["market_group_name"] == name  # the two examples describe one group
    return {
        "webhook_event_type": "meter.enrollment.group.updated",
        "market_group_id": program["market_group_id"],
        "market_group_name": name,
        "start_date_time": property_example(
            HOOKS, "MeterEnrollmentGroupUpdatedV1", "start_date_time"
        ),
        "end_date_time": property_example(HOOKS, "MeterEnrollmentGroupUpdatedV1", "end_date_time"),
        "meter_ids": meter_ids,
    }


async def roster(client: httpx.AsyncClient, group: JSON, trade_date: str) -> list[str]:
    body = await get(client, f"/v1/groups/{group['market_group_id']}/meters", trade_date=trade_date)
    return [item["meter_id"] for item in body["items"]]


def test_group_example_is_the_may_group_of_new_york_time() -> None:
    group = group_event([METER_ID])
    # Local midnight in America/New_York (EDT) on May 1 and on June 1.
    assert group["start_date_time"] == "2024-05-01T04:00:00Z"
    assert group["end_date_time"] == "2024-06-01T04:00:00Z"


async def test_group_example_lists_member_from_first_to_last_day(
    client: httpx.AsyncClient,
) -> None:
    await accepted(client, meter_created(region="NYISO"), "5c1b9c60-7d3c-4a53-8a4b-1f0e2d3c4b5a")
    group = group_event([METER_ID])
    await accepted(client, group, "7a0f3d2e-1c4b-4e5f-9a8b-7c6d5e4f3a2b")
    assert await roster(client, group, "2024-05-01") == [METER_ID]
    assert await roster(client, group, "2024-05-31") == [METER_ID]
    assert await roster(client, group, "2024-04-30") == []
    listed = await get(client, "/v1/groups", trade_date="2024-05-15")
    assert [(g["market_group_name"], g["meter_count"]) for g in listed["items"]] == [
        (group["market_group_name"], 1)
    ]


async def test_group_example_end_is_when_the_group_becomes_inactive(
    client: httpx.AsyncClient,
) -> None:
    """`end_date_time` is exclusive: on June 1 the May group has no members."""
    await accepted(client, meter_created(region="NYISO"), "5c1b9c60-7d3c-4a53-8a4b-1f0e2d3c4b5a")
    group = group_event([METER_ID])
    await accepted(client, group, "7a0f3d2e-1c4b-4e5f-9a8b-7c6d5e4f3a2b")
    assert await roster(client, group, "2024-06-01") == []
    participation = await get(
        client, f"/v1/meters/{METER_ID}/participation", **{"from": "2024-05-31", "to": "2024-06-01"}
    )
    groups = [row["market_group_id"] for row in participation["participation"]]
    assert groups == [group["market_group_id"], None]


async def test_group_example_member_not_yet_known_takes_its_days_from_the_group(
    client: httpx.AsyncClient,
) -> None:
    """Webhook-only: the member was never announced; its days are the group's (New York)."""
    group = group_event([METER_ID])
    await accepted(client, group, "7a0f3d2e-1c4b-4e5f-9a8b-7c6d5e4f3a2b")
    assert await roster(client, group, "2024-05-01") == [METER_ID]
    assert await roster(client, group, "2024-05-31") == [METER_ID]
    assert await roster(client, group, "2024-06-01") == []


def meter_created(region: str | None = None) -> JSON:
    payload: JSON = {
        "webhook_event_type": "meter.created",
        "meter_id": METER_ID,
        "partner_reference": property_example(HOOKS, "MeterCreatedEventV1", "partner_reference"),
    }
    if region is not None:
        payload["transmission_region"] = region
    return payload


def partner_actions_event(actions: JSON) -> JSON:
    return {
        "webhook_event_type": "meter.enrollment.required-actions.updated",
        "meter_id": METER_ID,
        "transmission_region": schema_example(HOOKS, "transmission_region"),
        "global_enrollment_status": "PENDING",
        "required_actions": actions,
    }


async def test_partner_actions_example_opens_then_clears_partner_side(
    client: httpx.AsyncClient,
) -> None:
    partner = property_example(HOOKS, "PartnerRequiredActions", "partner")
    await accepted(
        client, partner_actions_event({"partner": partner}), "1d6f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
    )
    view = await get(client, f"/v1/meters/{METER_ID}/enrollment")
    assert [a["action_code"] for a in view["required_actions"]["partner"]] == [
        a["action_code"] for a in partner
    ]
    assert view["status_reasons"] == [a["action_description"] for a in partner]
    assert view["status"] == "PENDING"
    # Every action resolved: Leap sends an empty `required_actions`.
    await accepted(client, partner_actions_event({}), "2e7a3b4c-5d6e-4f7a-9b0c-1d2e3f4a5b6c")
    view = await get(client, f"/v1/meters/{METER_ID}/enrollment")
    assert view["required_actions"].get("partner", []) == []
    assert view["status_reasons"] == []


async def test_global_status_examples_set_the_enrollment_status(
    client: httpx.AsyncClient,
) -> None:
    schema = "MeterEnrollmentGlobalStatusUpdated/allOf/1/properties/payload/properties"
    statuses = [
        ex.value
        for ex in examples(ASYNC, kind="schema")
        if ex.pointer.startswith(f"/components/schemas/{schema}/global_enrollment_status/")
    ]
    assert statuses == ["ELIGIBLE", "INELIGIBLE"]
    for n, status in enumerate(statuses):
        payload = {
            "webhook_event_type": "meter.enrollment.global-status.updated",
            "meter_id": METER_ID,
            "transmission_region": schema_example(HOOKS, "transmission_region"),
            "global_enrollment_status": status,
        }
        await accepted(client, payload, f"3f8b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6{n}")
        view = await get(client, f"/v1/meters/{METER_ID}/enrollment")
        assert view["status"] == status


async def test_participation_examples_make_one_timeline(client: httpx.AsyncClient) -> None:
    """Leap's three overlapping windows, sent in order: one non-overlapping timeline."""
    windows = property_example(ENROLL, "MeterEnrollmentFields", "participation_preferences")
    for n, window in enumerate(windows):
        payload = {
            "webhook_event_type": "meter.enrollment.participation-status.updated",
            "meter_id": METER_ID,
            "transmission_region": schema_example(HOOKS, "transmission_region"),
            **{k: v for k, v in window.items() if k != "reason"},
        }
        await accepted(client, payload, f"4a9c5d6e-7f8a-4b9c-8d1e-2f3a4b5c6d7{n}")
    view = await get(client, f"/v1/meters/{METER_ID}/enrollment")
    timeline = view["participation_preferences"]
    assert [w["participation_preference"] for w in timeline][-1] == "DISENROLL"
    for earlier, later in itertools.pairwise(timeline):
        assert earlier["end_time"] is not None, timeline
        assert instant(earlier["end_time"]) <= instant(later["start_time"]), timeline


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
