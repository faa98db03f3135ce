"""Leap's v2 read endpoints over HTTP: auth, paging, filters, deltas, evolutions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.leap_sim.portfolio import MeterCore
from app.leap_sim.server import RunningSim
from tests.support.sim import ANCHOR, API_KEY, N_METERS

JSON = dict[str, Any]


def walk(api: httpx.Client, path: str, body: JSON) -> list[JSON]:
    out: list[JSON] = []
    token = None
    for _ in range(100):
        request = dict(body, **({"page_token": token} if token else {}))
        response = api.post(path, json=request)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["meters"]) <= body.get("page_size", 500)
        out += page["meters"]
        token = page.get("next_page_token")
        if token is None:
            return out
    raise AssertionError("paging did not end")


def expected(sim: RunningSim, keep: Callable[[MeterCore], bool]) -> list[str]:
    p = sim.state.portfolio
    return [c.meter_id for i in range(p.count) if (c := p.core(i)) is not None and keep(c)]


@pytest.mark.parametrize(
    "path",
    ["/v2/meters/search", "/v2/meters/enrollments/search"],
)
def test_paging_returns_every_meter_exactly_once(
    sim: RunningSim, api: httpx.Client, path: str
) -> None:
    meters = walk(api, path, {"page_size": 500})
    ids = [m["meter_id"] for m in meters]
    assert len(ids) == N_METERS == len(set(ids))
    assert ids == expected(sim, lambda c: True)


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {},
        {"headers": {"authorization": "Bearer wrong"}},
        {"headers": {"authorization": API_KEY}},
    ],
)
def test_v2_requires_the_bearer_key(sim: RunningSim, request_kwargs: JSON) -> None:
    meter_id = sim.state.portfolio.meter_id(0)
    with httpx.Client(base_url=sim.url) as anon:
        for response in (
            anon.get(f"/v2/meters/{meter_id}", **request_kwargs),
            anon.get(f"/v2/meters/{meter_id}/enrollments", **request_kwargs),
            anon.post("/v2/meters/search", json={}, **request_kwargs),
            anon.post("/v2/meters/enrollments/search", json={}, **request_kwargs),
            anon.post("/v2/meters/search", json={"page_size": 9999}, **request_kwargs),
            anon.get("/v2/meters/not-a-uuid", **request_kwargs),
        ):
            assert response.status_code == 401
            assert response.json() == {"title": "Unauthorized", "status": 401, "details": {}}
        hooks = anon.get("/v1.1/webhooks", **request_kwargs)
        assert hooks.status_code == 401
        assert hooks.json() == {"error": "Unauthorized", "message": "Auth token is invalid"}
        assert anon.get("/sim/stats", **request_kwargs).status_code == 401


def test_get_meter_and_enrollment(sim: RunningSim, api: httpx.Client) -> None:
    p = sim.state.portfolio
    meter_id = p.meter_id(42)
    detail = api.get(f"/v2/meters/{meter_id}").json()
    enrollment = api.get(f"/v2/meters/{meter_id}/enrollments").json()
    assert detail == p.meter_record(42)
    assert enrollment == p.enrollment_record(42)
    assert detail["meter_id"] == enrollment["meter_id"] == meter_id


def test_unknown_and_malformed_meter_ids(api: httpx.Client) -> None:
    missing = api.get("/v2/meters/11111111-1111-4111-8111-111111111111")
    assert missing.status_code == 404
    assert missing.json()["title"] == "Meter not found"
    bad = api.get("/v2/meters/abcdef/enrollments")
    assert bad.status_code == 400
    assert bad.json() == {
        "title": "Meter id is not a UUID",
        "status": 400,
        "details": {"meter_id": "abcdef"},
    }


@pytest.mark.parametrize(
    ("body", "keep"),
    [
        ({"transmission_region": "ERCOT"}, lambda c: c.region.name == "ERCOT"),
        (
            {"global_enrollment_statuses": ["PENDING", "ELIGIBLE"]},
            lambda c: c.status in ("PENDING", "ELIGIBLE"),
        ),
        ({"customer_classification": "COMMERCIAL"}, lambda c: c.classification == "COMMERCIAL"),
        ({"meter_types": ["DEVICE"]}, lambda c: c.meter_type == "DEVICE"),
        ({"load_types": ["LIGHTING"]}, lambda c: "LIGHTING" in c.load_types),
        ({"exclude_archived": True}, lambda c: not c.is_archived),
        ({"partner_action_required": True}, lambda c: bool(c.partner_actions)),
        (
            {"action_type": ["HAS_NOMINATIONS"]},
            lambda c: any(a["action_type"] == "HAS_NOMINATIONS" for a in c.leap_actions),
        ),
        ({"customer_groups": ["Grocers"]}, lambda c: c.customer_group == "Grocers"),
        ({"tags": ["pilot"]}, lambda c: "pilot" in c.tags),
        (
            {"created_before_date_time": "2024-06-01T00:00:00Z"},
            lambda c: c.created_at.isoformat() < "2024-06-01",
        ),
        (
            {"transmission_region": "CAISO", "global_enrollment_statuses": ["ACTIVE"]},
            lambda c: c.region.name == "CAISO" and c.status == "ACTIVE",
        ),
    ],
)
def test_filters_match_a_brute_force_scan(
    sim: RunningSim, api: httpx.Client, body: JSON, keep: Callable[[MeterCore], bool]
) -> None:
    want = expected(sim, keep)
    assert want, "filter selects nothing in the test portfolio"
    got = [m["meter_id"] for m in walk(api, "/v2/meters/enrollments/search", body)]
    assert got == want


def test_meter_id_reference_and_connection_filters(sim: RunningSim, api: httpx.Client) -> None:
    p = sim.state.portfolio
    ids = [p.meter_id(i) for i in (5, 900, 2000)]
    got = walk(
        api, "/v2/meters/search", {"meter_ids": [*ids, "11111111-1111-4111-8111-111111111111"]}
    )
    assert [m["meter_id"] for m in got] == ids
    cores = [c for i in range(p.count) if (c := p.core(i))]
    refs: dict[str, list[str]] = {}
    for c in cores:
        if c.partner_reference:
            refs.setdefault(c.partner_reference, []).append(c.meter_id)
    shared = next(r for r, members in refs.items() if len(members) > 1)
    got = walk(api, "/v2/meters/search", {"partner_references": [shared]})
    assert [m["meter_id"] for m in got] == refs[shared]
    assert all(m["partner_reference"] == shared for m in got)
    connected = next(c for c in cores if c.connection_references)
    got = walk(
        api,
        "/v2/meters/enrollments/search",
        {"connection_reference_ids": connected.connection_references},
    )
    assert connected.meter_id in [m["meter_id"] for m in got]
    assert all(set(m["connection_references"]) & set(connected.connection_references) for m in got)


@pytest.mark.parametrize(
    "body",
    [
        {"page_size": 501},
        {"page_size": 0},
        {"transmission_region": "MARS"},
        {"meter_ids": ["abcdef"]},
        {"page_token": "garbage!"},
        {"global_enrollment_statuses": []},
    ],
)
def test_bad_search_requests_get_400_in_leaps_shape(api: httpx.Client, body: JSON) -> None:
    response = api.post("/v2/meters/search", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["status"] == 400
    assert error["title"]
    assert isinstance(error["details"], dict)


def test_page_token_only_works_with_its_own_filter(api: httpx.Client) -> None:
    first = api.post("/v2/meters/search", json={"page_size": 10}).json()
    token = first["next_page_token"]
    other = api.post(
        "/v2/meters/search",
        json={"page_size": 10, "page_token": token, "transmission_region": "PJM"},
    )
    assert other.status_code == 400


def test_delta_returns_only_mutated_meters(sim: RunningSim, api: httpx.Client) -> None:
    p = sim.state.portfolio
    since = {"last_modified_date_time": ANCHOR.isoformat()}
    assert walk(api, "/v2/meters/search", since) == []
    ids = [p.meter_id(i) for i in (3, 77, 1500, 2300)]
    changes = [
        ("/sim/meters/status", {"meter_ids": ids[:1], "global_enrollment_status": "INELIGIBLE"}),
        (
            "/sim/meters/participation",
            {
                "meter_ids": ids[1:2],
                "participation_preference": "IDLE",
                "start_time": "2025-07-01T07:00:00Z",
                "end_time": "2025-07-05T07:00:00Z",
                "reason": "vacation",
            },
        ),
        ("/sim/meters/required-actions", {"meter_ids": ids[2:3], "partner": ["IS_AUTHORIZED"]}),
        ("/sim/meters/archive", {"meter_ids": ids[3:]}),
    ]
    for path, body in changes:
        assert api.post(path, json=body).status_code == 200
    got = walk(api, "/v2/meters/enrollments/search", since)
    assert sorted(m["meter_id"] for m in got) == sorted(ids)
    by_id = {m["meter_id"]: m for m in got}
    assert all(m["audit"]["updated_at"] > ANCHOR.isoformat() for m in got)
    assert by_id[ids[0]]["global_enrollment_status"] == "INELIGIBLE"
    assert by_id[ids[1]]["participation_preferences"][-1]["participation_preference"] == "IDLE"
    assert by_id[ids[2]]["required_actions"]["partner"][0]["action_type"] == "IS_AUTHORIZED"
    assert by_id[ids[3]]["is_archived"] is True
    cursor = max(m["audit"]["updated_at"] for m in got)
    assert walk(api, "/v2/meters/search", {"last_modified_date_time": cursor}) == []
    combined = {"last_modified_date_time": ANCHOR.isoformat(), "exclude_archived": True}
    assert ids[3] not in [m["meter_id"] for m in walk(api, "/v2/meters/search", combined)]


def test_added_and_removed_meters(sim: RunningSim, api: httpx.Client) -> None:
    added = api.post(
        "/sim/meters",
        json={"count": 2, "transmission_region": "SERC", "partner_reference": "new-site-001"},
    ).json()["meter_ids"]
    for meter_id in added:
        record = api.get(f"/v2/meters/{meter_id}").json()
        assert record["transmission_region"] == "SERC"
        assert record["partner_reference"] == "new-site-001"
        assert record["audit"]["created_at"] > ANCHOR.isoformat()
    found = walk(api, "/v2/meters/search", {"created_after_date_time": ANCHOR.isoformat()})
    assert [m["meter_id"] for m in found] == added
    by_ref = walk(api, "/v2/meters/search", {"partner_references": ["new-site-001"]})
    assert [m["meter_id"] for m in by_ref] == added
    gone = sim.state.portfolio.meter_id(10)
    assert api.post("/sim/meters/remove", json={"meter_ids": [gone]}).status_code == 200
    assert api.get(f"/v2/meters/{gone}").status_code == 404
    assert api.get(f"/v2/meters/{gone}/enrollments").status_code == 404
    everything = [m["meter_id"] for m in walk(api, "/v2/meters/search", {})]
    assert gone not in everything
    assert len(everything) == sim.state.portfolio.count - 1
    assert (
        api.post(
            "/sim/meters/status", json={"meter_ids": [gone], "global_enrollment_status": "ACTIVE"}
        ).status_code
        == 404
    )


def test_roster_window_shows_in_program_enrollment(sim: RunningSim, api: httpx.Client) -> None:
    group = api.get("/sim/groups").json()["groups"][3]
    # A group window ends when the group becomes inactive (June 18, local midnight); the
    # delivery period it adds ends at the start of its last day (June 17).
    window = {"start_date_time": "2025-06-16T07:00:00Z", "end_date_time": "2025-06-18T07:00:00Z"}
    period_end = "2025-06-17T07:00:00Z"
    chosen = api.put(
        f"/sim/groups/{group['market_group_id']}/roster", json={**window, "count": 3}
    ).json()["meter_ids"]
    assert len(chosen) == 3
    for meter_id in chosen:
        record = api.get(f"/v2/meters/{meter_id}/enrollments").json()
        assert record["transmission_region"] == group["region"]
        entries = [
            e
            for e in record["program_enrollment"]
            if e.get("market_group_id") == group["market_group_id"]
        ]
        assert any(
            e["delivery_period_start_date_time"] == window["start_date_time"]
            and e["delivery_period_end_date_time"] == period_end
            for e in entries
        )
    # replacing the roster drops the window from meters no longer in it
    api.put(
        f"/sim/groups/{group['market_group_id']}/roster", json={**window, "meter_ids": chosen[:1]}
    )
    dropped = api.get(f"/v2/meters/{chosen[1]}/enrollments").json()
    assert not any(
        e["delivery_period_start_date_time"] == window["start_date_time"]
        for e in dropped["program_enrollment"]
    )


def test_stats_count_requests(api: httpx.Client) -> None:
    stats = api.get("/sim/stats").json()
    assert stats["requests"]["v2"] > 10
    assert stats["meters"] >= N_METERS
    assert "deliveries" in stats
    assert "faults" in stats
