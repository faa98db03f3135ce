"""The fake's answers and events validate against Leap's published definitions."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.leap_sim import regions as R
from app.leap_sim.server import RunningSim, serve_in_thread
from tests.support.leap_schemas import SCHEMAS_DIR, document, errors, event_errors
from tests.support.sim import API_KEY, Receiver, make_state


@pytest.fixture(scope="module")
def contract_sim() -> Iterator[RunningSim]:
    running = serve_in_thread(make_state(meters=1200, groups=24, seed=23, time_factor=0.001))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def capi(contract_sim: RunningSim) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=contract_sim.url, headers=headers, timeout=30) as client:
        yield client


def _sample(sim: RunningSim) -> list[int]:
    """Per region and status, a few meters; plus shapes that are easy to miss."""
    p = sim.state.portfolio
    picked: dict[tuple[str, str, str], list[int]] = {}
    for i in range(p.count):
        c = p.core(i)
        assert c is not None
        key = (c.region.name, c.status, c.meter_type)
        if len(picked.setdefault(key, [])) < 2:
            picked[key].append(i)
    regions = {k[0] for k in picked}
    assert regions == {r.name for r in R.REGIONS}
    return sorted(i for group in picked.values() for i in group)


def test_extracted_definitions_are_in_the_repository() -> None:
    for name in ("meters", "enrollments", "webhooks", "dispatching", "events-asyncapi"):
        assert (SCHEMAS_DIR / f"{name}.json").is_file(), name
    assert "MeterDetailsResponse" in document("meters.yml")["components"]["schemas"]


def test_meter_details_and_enrollments_validate(
    contract_sim: RunningSim, capi: httpx.Client
) -> None:
    sample = _sample(contract_sim)
    assert len(sample) > 50
    for i in sample:
        meter_id = contract_sim.state.portfolio.meter_id(i)
        detail = capi.get(f"/v2/meters/{meter_id}").json()
        assert errors("meters.yml", "MeterDetailsResponse", detail) == [], meter_id
        enrollment = capi.get(f"/v2/meters/{meter_id}/enrollments").json()
        assert errors("enrollments.yml", "MeterEnrollmentResponse", enrollment) == [], meter_id


def test_search_pages_validate(capi: httpx.Client) -> None:
    for path, schema, file in (
        ("/v2/meters/search", "ListMeterDetailsResponse", "meters.yml"),
        ("/v2/meters/enrollments/search", "searchMeterEnrollments_200_response", "enrollments.yml"),
    ):
        page = capi.post(path, json={"page_size": 500}).json()
        assert page["next_page_token"]
        assert errors(file, schema, page) == []
        last = capi.post(path, json={"page_size": 500, "page_token": page["next_page_token"]})
        assert errors(file, schema, last.json()) == []
        request = {"page_size": 500, "transmission_region": "NYISO", "exclude_archived": True}
        assert errors(file, "MeterFilterRequest", request) == []


def test_error_bodies_validate(contract_sim: RunningSim, capi: httpx.Client) -> None:
    with httpx.Client(base_url=contract_sim.url) as anon:
        unauthorized = anon.get("/v2/meters/11111111-1111-4111-8111-111111111111").json()
        hooks_unauthorized = anon.get("/v1.1/webhooks").json()
    not_found = capi.get("/v2/meters/11111111-1111-4111-8111-111111111111").json()
    bad = capi.post("/v2/meters/search", json={"page_size": 9999}).json()
    for body in (unauthorized, not_found, bad):
        assert errors("meters.yml", "ErrorResponse", body) == []
    assert errors("webhooks.yml", "ErrorResponse", hooks_unauthorized) == []


def test_webhook_subscriptions_validate_and_every_event_validates(
    contract_sim: RunningSim, capi: httpx.Client, receiver: Receiver
) -> None:
    receiver.reset()
    schemas = document("webhooks.yml")["components"]["schemas"]
    all_types = list(schemas["WebhookEventType"]["enum"])
    sub = {
        "event_types": all_types,
        "receiver_url": receiver.url,
        "headers": [{"name": "x-api-key", "value": "hook-secret"}],
    }
    assert errors("webhooks.yml", "WebhookRequest", sub) == []
    created = capi.post("/v1.1/webhooks", json=sub).json()
    assert errors("webhooks.yml", "WebhookResponse", created) == []
    listed = capi.get("/v1.1/webhooks").json()
    assert errors("webhooks.yml", "WebhookListResponse", listed) == []

    p = contract_sim.state.portfolio
    per_region: dict[str, str] = {}
    for i in range(p.count):
        c = p.core(i)
        assert c is not None
        per_region.setdefault(c.region.name, c.meter_id)
    ids = list(per_region.values())
    unreferenced = next(
        c.meter_id for i in range(p.count) if (c := p.core(i)) and c.partner_reference is None
    )
    calls = [
        ("/sim/meters", {"count": 1}),
        ("/sim/meters", {"count": 1, "transmission_region": "WECC_PC", "meter_type": "DEVICE"}),
        (
            "/sim/meters/status",
            {"meter_ids": [*ids, unreferenced], "global_enrollment_status": "ELIGIBLE"},
        ),
        (
            "/sim/meters/participation",
            {
                "meter_ids": ids,
                "participation_preference": "DISENROLL",
                "start_time": "2025-08-01T07:00:00Z",
            },
        ),
        (
            "/sim/meters/required-actions",
            {"meter_ids": ids, "partner": ["NO_MISSING_FIELDS", "ADDRESS"]},
        ),
        ("/sim/meters/required-actions", {"meter_ids": ids[:2], "partner": []}),
        ("/sim/connect-sessions", {"partner_reference": "site-abc-1", "status": "COMPLETED"}),
        (
            "/sim/authorizations",
            {"partner_reference": "site-abc-1", "utility_name": "PGE", "status": "FAILED"},
        ),
    ]
    for path, body in calls:
        response = capi.post(path, json=body)
        assert response.status_code == 200, response.text
    group = capi.get("/sim/groups").json()["groups"][0]
    roster = {
        "start_date_time": "2025-07-01T07:00:00Z",
        "end_date_time": "2025-07-31T07:00:00Z",
        "count": 25,
    }
    assert (
        capi.put(f"/sim/groups/{group['market_group_id']}/roster", json=roster).status_code == 200
    )
    assert capi.post("/sim/drain", params={"seconds": 10}).json()["drained"] is True

    bodies = receiver.bodies()
    assert {b["payload"]["webhook_event_type"] for b in bodies} == set(all_types)
    assert len(bodies) == capi.get("/sim/stats").json()["events_emitted"]
    for body in bodies:
        assert event_errors(body) == [], body
    assert all(r.headers["x-api-key"] == "hook-secret" for r in receiver.received)
    cleared = [
        b["payload"]
        for b in bodies
        if b["payload"]["webhook_event_type"].endswith("required-actions.updated")
    ]
    assert sum(1 for c in cleared if c["required_actions"] == {}) == 2
    group_event = next(
        b["payload"] for b in bodies if b["payload"]["webhook_event_type"].endswith("group.updated")
    )
    assert len(group_event["meter_ids"]) == 25
