"""The fake Leap (`meter-sync leap-sim`) follows Leap's own examples, not this service's
assumptions: otherwise tests pass because the fake believes what the service believes.

Names chosen here (SPEC lists the behaviours, not the control names; the fake follows):
- `PUT /sim/faults` takes `rate_search_404` (a search answers Leap's 404 "Meter not
  found") and `rate_page_without_meters` (a search page comes without its `meters`
  key), each a rate in [0, 1] like the other faults, applied to the two searches.
- `POST /sim/authorizations` with status COMPLETED continues Leap's authorization
  chain: it emits `meter.created` for a new meter whose records list the refId in
  `connection_references` (its own `partner_reference` may differ).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.leap_sim.portfolio import Portfolio
from app.leap_sim.sender import Sender
from app.leap_sim.server import serve_in_thread
from app.leap_sim.state import SimState

KEY = "rules-sim-key"
ANCHOR = datetime(2025, 6, 15, 12, tzinfo=UTC)
ZONES = {
    "CAISO": "America/Los_Angeles",
    "WECC_PC": "America/Los_Angeles",
    "ERCOT": "America/Chicago",
    "SERC": "America/Chicago",
    "NYISO": "America/New_York",
    "ISONE": "America/New_York",
    "PJM": "America/New_York",
    "WECC_SW": "America/Phoenix",
}


@pytest.fixture(scope="module")
def fake() -> Iterator[httpx.Client]:
    state = SimState(
        Portfolio(800, 16, 5, anchor=ANCHOR), api_key=KEY, sender=Sender(time_factor=0.001)
    )
    running = serve_in_thread(state)
    headers = {"authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(base_url=running.url, headers=headers, timeout=30) as client:
            yield client
    finally:
        running.stop()


def _all(fake: httpx.Client, kind: str) -> list[dict[str, Any]]:
    path = "/v2/meters/enrollments/search" if kind == "enrollments" else "/v2/meters/search"
    records: list[dict[str, Any]] = []
    body: dict[str, Any] = {"page_size": 500}
    while True:
        page = fake.post(path, json=body)
        assert page.status_code == 200, page.text
        records += page.json().get("meters", [])
        token = page.json().get("next_page_token")
        if not token:
            return records
        body = {"page_size": 500, "page_token": token}


def _local(value: str, region: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(ZoneInfo(ZONES[region]))


def test_fake_leap_carries_groups_on_eligible_enrollments(fake: httpx.Client) -> None:
    statuses = {
        p["enrollment_status"]
        for record in _all(fake, "enrollments")
        for p in record["program_enrollment"]
        if p.get("market_group_id")
    }
    assert {"ACTIVE", "ELIGIBLE"} <= statuses


def test_fake_leap_connection_references_differ_from_partner_reference(
    fake: httpx.Client,
) -> None:
    differing = [
        r
        for r in _all(fake, "meters")
        if r.get("connection_references")
        and r.get("partner_reference") not in r["connection_references"]
    ]
    assert differing


def test_fake_leap_has_multi_month_delivery_periods(fake: httpx.Client) -> None:
    spans = []
    for record in _all(fake, "enrollments"):
        for p in record["program_enrollment"]:
            start = _local(p["delivery_period_start_date_time"], record["transmission_region"])
            end = _local(p["delivery_period_end_date_time"], record["transmission_region"])
            # Leap writes every period's end as the start (local midnight) of its last day.
            assert end.time() == time(0), p
            spans.append((end.year - start.year) * 12 + end.month - start.month)
    assert max(spans) >= 2  # e.g. NYISO-SCR_2024_MAY_OCT


def test_fake_leap_site_devices_use_current_names(fake: httpx.Client) -> None:
    devices = [d for r in _all(fake, "meters") for d in r.get("site", {}).get("site_devices", [])]
    assert [d for d in devices if "pv_connected" in d] == []
    assert any("is_connected_to_solar" in d for d in devices)


def test_fake_leap_roster_window_is_exclusive_and_period_ends_on_last_day(
    fake: httpx.Client,
) -> None:
    # Leap's example group: start 2024-05-01T04:00:00Z, end 2024-06-01T04:00:00Z (the
    # instant it becomes inactive). Its members' delivery period ends at May 31's start.
    hook = fake.post(
        "/v1.1/webhooks",
        json={
            "event_types": ["meter.enrollment.group.updated"],
            "receiver_url": "http://127.0.0.1:9/nowhere",
        },
    )
    assert hook.status_code == 200, hook.text
    try:
        group = next(g for g in fake.get("/sim/groups").json()["groups"] if g["region"] == "NYISO")
        before = len(fake.get("/sim/events").json()["events"])
        answer = fake.put(
            f"/sim/groups/{group['market_group_id']}/roster",
            json={
                "start_date_time": "2024-05-01T04:00:00Z",
                "end_date_time": "2024-06-01T04:00:00Z",
                "count": 2,
            },
        )
        assert answer.status_code == 200, answer.text
        [event] = [e["payload"] for e in fake.get("/sim/events").json()["events"][before:]]
        assert (event["start_date_time"], event["end_date_time"]) == (
            "2024-05-01T04:00:00Z",
            "2024-06-01T04:00:00Z",
        )
        may_1 = datetime(2024, 5, 1, tzinfo=ZoneInfo(ZONES["NYISO"]))
        for meter_id in answer.json()["meter_ids"]:
            record = fake.get(f"/v2/meters/{meter_id}/enrollments").json()
            [entry] = [
                p
                for p in record["program_enrollment"]
                if p.get("market_group_id") == group["market_group_id"]
                and _local(p["delivery_period_start_date_time"], "NYISO") == may_1
            ]
            end = _local(entry["delivery_period_end_date_time"], "NYISO")
            assert end == datetime(2024, 5, 31, tzinfo=ZoneInfo(ZONES["NYISO"]))
    finally:
        fake.delete(f"/v1.1/webhooks/{hook.json()['webhook_id']}")


def test_fake_leap_authorization_chain(fake: httpx.Client) -> None:
    hook = fake.post(
        "/v1.1/webhooks",
        json={
            "event_types": ["meter.created", "connect_session.authorization_updated"],
            "receiver_url": "http://127.0.0.1:9/nowhere",
        },
    )
    assert hook.status_code == 200, hook.text
    try:
        before = len(fake.get("/sim/events").json()["events"])
        answer = fake.post(
            "/sim/connect", json={"partner_reference": "connect-ref-77", "utility_name": "PGE"}
        )
        assert answer.status_code == 200, answer.text
        emitted = [e["payload"] for e in fake.get("/sim/events").json()["events"][before:]]
        chain = [
            (p["webhook_event_type"], p.get("status"))
            for p in emitted
            if p["webhook_event_type"] == "connect_session.authorization_updated"
        ]
        assert ("connect_session.authorization_updated", "COMPLETED") in chain
        # The meters come after the authorization completed.
        types = [p["webhook_event_type"] for p in emitted]
        completed_at = types.index("connect_session.authorization_updated")
        assert "meter.created" in types[completed_at:]
        created = [p for p in emitted if p["webhook_event_type"] == "meter.created"]
        assert created
        for payload in created:
            record = fake.get(f"/v2/meters/{payload['meter_id']}").json()
            assert "connect-ref-77" in record["connection_references"]
    finally:
        fake.delete(f"/v1.1/webhooks/{hook.json()['webhook_id']}")


NO_SUCH_METER = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize("path", ["/v2/meters/search", "/v2/meters/enrollments/search"])
def test_fake_leap_can_answer_search_404(fake: httpx.Client, path: str) -> None:
    # Leap answers a search that finds nothing with 404 "Meter not found".
    configured = fake.put("/sim/faults", json={"empty_search_404_rate": 1.0})
    try:
        assert configured.status_code == 200, configured.text
        answer = fake.post(path, json={"page_size": 10, "meter_ids": [NO_SUCH_METER]})
        assert answer.status_code == 404
        assert answer.json()["status"] == 404
        assert set(answer.json()) >= {"title", "status", "details"}
    finally:
        fake.put("/sim/faults", json={})


@pytest.mark.parametrize("path", ["/v2/meters/search", "/v2/meters/enrollments/search"])
def test_fake_leap_can_serve_pages_without_meters(fake: httpx.Client, path: str) -> None:
    configured = fake.put("/sim/faults", json={"empty_page_without_meters_rate": 1.0})
    try:
        assert configured.status_code == 200, configured.text
        answer = fake.post(path, json={"page_size": 10, "meter_ids": [NO_SUCH_METER]})
        assert answer.status_code == 200
        assert "meters" not in answer.json()
        # A search that finds meters still lists them.
        assert fake.post(path, json={"page_size": 10}).json()["meters"]
    finally:
        fake.put("/sim/faults", json={})
    assert "meters" in fake.post(path, json={"page_size": 10, "meter_ids": [NO_SUCH_METER]}).json()
