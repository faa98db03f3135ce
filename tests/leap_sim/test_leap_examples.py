"""The fake Leap follows Leap's own examples, not this service's assumptions.

Group windows end when the group becomes inactive; delivery periods end at the start of
their last day, also when they span months; ELIGIBLE enrollments name their group;
Connect refIds differ from partner references; the authorization chain ends in a
`meter.created` for a meter carrying the refId; empty searches may answer 404 or a page
without `meters`; device fields carry Leap's current names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.leap_sim.state import EVENT_TYPES
from tests.support.leap_schemas import errors, event_errors
from tests.support.sim import Receiver

JSON = dict[str, Any]
UNKNOWN = "f5c5e328-e325-4d6d-b357-5015ed5962a7"


def enrollments(api: httpx.Client, meter_id: str) -> JSON:
    response = api.get(f"/v2/meters/{meter_id}/enrollments")
    assert response.status_code == 200, response.text
    body: JSON = response.json()
    return body


def all_records(api: httpx.Client, path: str) -> list[JSON]:
    out: list[JSON] = []
    body: JSON = {"page_size": 500}
    while True:
        page = api.post(path, json=body).json()
        out += page["meters"]
        if not page.get("next_page_token"):
            return out
        body = {"page_size": 500, "page_token": page["next_page_token"]}


@pytest.fixture(scope="module")
def records(api: httpx.Client) -> list[JSON]:
    return all_records(api, "/v2/meters/enrollments/search")


def test_group_window_ends_when_the_group_becomes_inactive(api: httpx.Client) -> None:
    groups = {g["region"]: g for g in api.get("/sim/groups").json()["groups"]}
    # The portfolio's month is June 2025: groups run from June 1 to July 1, local midnight.
    assert (groups["CAISO"]["start_date_time"], groups["CAISO"]["end_date_time"]) == (
        "2025-06-01T07:00:00Z",
        "2025-07-01T07:00:00Z",
    )
    assert (groups["NYISO"]["start_date_time"], groups["NYISO"]["end_date_time"]) == (
        "2025-06-01T04:00:00Z",
        "2025-07-01T04:00:00Z",
    )


def test_default_roster_window_is_the_month_and_its_period_ends_on_the_last_day(
    api: httpx.Client, receiver: Receiver
) -> None:
    group = next(g for g in api.get("/sim/groups").json()["groups"] if g["region"] == "CAISO")
    answer = api.put(f"/sim/groups/{group['market_group_id']}/roster", json={"count": 2}).json()
    assert len(answer["meter_ids"]) == 2
    for meter_id in answer["meter_ids"]:
        entries = [
            e
            for e in enrollments(api, meter_id)["program_enrollment"]
            if e.get("market_group_id") == group["market_group_id"]
            and e["delivery_period_start_date_time"] == "2025-06-01T07:00:00Z"
        ]
        assert entries, meter_id
        assert {e["delivery_period_end_date_time"] for e in entries} == {"2025-06-30T07:00:00Z"}


def test_eligible_enrollments_name_their_group(records: list[JSON]) -> None:
    eligible = [r for r in records if r["global_enrollment_status"] == "ELIGIBLE"]
    assert eligible
    for record in eligible:
        grouped = [e for e in record["program_enrollment"] if "market_group_id" in e]
        assert grouped, record["meter_id"]
        assert all(e["enrollment_status"] == "ELIGIBLE" for e in grouped)
    others = [r for r in records if r["global_enrollment_status"] in ("INELIGIBLE", "PENDING")]
    assert all("market_group_id" not in e for r in others for e in r["program_enrollment"])


def test_nyiso_scr_periods_span_the_capability_season(records: list[JSON]) -> None:
    record = next(r for r in records if r["transmission_region"] == "NYISO")
    scr = {
        e["delivery_period"]: (
            e["delivery_period_start_date_time"],
            e["delivery_period_end_date_time"],
        )
        for e in record["program_enrollment"]
        if e["program_identifier"] == "NYISO-SCR"
    }
    # Ends at the start of the last day: October 31 and April 30, New York midnight.
    assert scr["NYISO-SCR_2025_MAY_OCT"] == ("2025-05-01T04:00:00Z", "2025-10-31T04:00:00Z")
    assert scr["NYISO-SCR_2024_NOV_APR"] == ("2024-11-01T04:00:00Z", "2025-04-30T04:00:00Z")
    assert len(scr) == 4


def test_connection_references_differ_from_partner_references_and_are_searchable(
    api: httpx.Client, records: list[JSON]
) -> None:
    connected = [r for r in records if r["connection_references"]]
    differing = [
        r for r in connected if r.get("partner_reference") not in r["connection_references"]
    ]
    same = [r for r in connected if r.get("partner_reference") in r["connection_references"]]
    assert differing
    assert same  # both happen at Leap
    ref = differing[0]["connection_references"][0]
    expected = sorted(r["meter_id"] for r in records if ref in r["connection_references"])
    found = api.post(
        "/v2/meters/search", json={"connection_reference_ids": [ref], "page_size": 500}
    ).json()["meters"]
    assert sorted(m["meter_id"] for m in found) == expected


def test_authorization_chain_ends_in_meters_carrying_the_connect_reference(
    api: httpx.Client, receiver: Receiver
) -> None:
    receiver.reset()
    sub = {
        "event_types": list(EVENT_TYPES),
        "receiver_url": receiver.url,
        "headers": [{"name": "x-webhook-secret", "value": "chain-secret-123"}],
    }
    webhook_id = api.post("/v1.1/webhooks", json=sub).json()["webhook_id"]
    try:
        body = {
            "partner_reference": "connect-ref-0042",
            "utility_name": "PGE",
            "meters": 2,
            "transmission_region": "CAISO",
            "meter_partner_reference": "site-0042-a",
        }
        answer = api.post("/sim/connect", json=body).json()
        assert api.post("/sim/drain", params={"seconds": 10}).json()["drained"] is True
    finally:
        api.delete(f"/v1.1/webhooks/{webhook_id}")
    emitted = [
        e["payload"]
        for e in api.get("/sim/events").json()["events"]
        if e["webhook_id"] == webhook_id
    ]
    steps = [(p["webhook_event_type"], p.get("status")) for p in emitted]
    assert steps == [
        ("connect_session.updated", "CREATED"),
        ("connect_session.updated", "UPDATED"),
        ("connect_session.authorization_updated", "INITIATED"),
        ("connect_session.authorization_updated", "COMPLETED"),
        ("connect_session.updated", "COMPLETED"),
        ("meter.created", None),
        ("meter.created", None),
    ]
    assert [p["meter_id"] for p in emitted[5:]] == answer["meter_ids"]
    assert all(event_errors(b) == [] for b in receiver.bodies())
    assert len(receiver.bodies()) == len(steps)
    for meter_id in answer["meter_ids"]:
        record = api.get(f"/v2/meters/{meter_id}").json()
        assert errors("meters.yml", "MeterDetailsResponse", record) == []
        assert record["connection_references"] == ["connect-ref-0042"]
        assert record["partner_reference"] == "site-0042-a"
    found = api.post(
        "/v2/meters/search", json={"connection_reference_ids": ["connect-ref-0042"]}
    ).json()["meters"]
    assert sorted(m["meter_id"] for m in found) == sorted(answer["meter_ids"])


@pytest.fixture
def empty_search_faults(api: httpx.Client) -> Iterator[None]:
    yield
    assert api.put("/sim/faults", json={}).status_code == 200


@pytest.mark.usefixtures("empty_search_faults")
def test_empty_search_may_answer_404(api: httpx.Client) -> None:
    api.put("/sim/faults", json={"empty_search_404_rate": 1.0})
    for path, file in (
        ("/v2/meters/search", "meters.yml"),
        ("/v2/meters/enrollments/search", "enrollments.yml"),
    ):
        response = api.post(path, json={"meter_ids": [UNKNOWN]})
        assert response.status_code == 404, response.text
        assert errors(file, "ErrorResponse", response.json()) == []
        found = api.post(path, json={"page_size": 5})
        assert found.status_code == 200
        assert len(found.json()["meters"]) == 5
    assert api.get("/sim/faults").json()["injected"]["empty_search_404"] == 2


@pytest.mark.usefixtures("empty_search_faults")
def test_empty_enrollment_search_may_come_without_meters(api: httpx.Client) -> None:
    api.put("/sim/faults", json={"empty_page_without_meters_rate": 1.0})
    response = api.post("/v2/meters/enrollments/search", json={"meter_ids": [UNKNOWN]})
    assert response.status_code == 200, response.text
    assert "meters" not in response.json()
    assert "next_page_token" not in response.json()
    assert (
        len(api.post("/v2/meters/enrollments/search", json={"page_size": 3}).json()["meters"]) == 3
    )


def test_devices_carry_leaps_current_field_names(api: httpx.Client) -> None:
    meters = all_records(api, "/v2/meters/search")
    devices = [d for m in meters for d in m.get("site", {}).get("site_devices", [])]
    batteries = [d for d in devices if d["device_type"] == "BATTERY"]
    assert batteries
    assert all("is_connected_to_solar" in d for d in batteries)
    assert not any("pv_connected" in d for d in devices)
