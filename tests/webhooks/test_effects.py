"""What each Leap event type does to the inventory, checked through the REST API and SQL."""

from __future__ import annotations

import uuid

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import events
from tests.support.db import rows, scalar
from tests.support.http import deliver, read_auth
from tests.support.live import LiveApp

METER = events.CAISO_METER
GROUP = "406720c2-0175-4137-9ff1-1641702292d4"


async def send(client: httpx.AsyncClient, payload: dict[str, object]) -> httpx.Response:
    response = await deliver(client, events.body(payload))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    return response


async def test_meter_created_upserts_meter_and_partner(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await send(client, events.meter_created())
    meter = (await client.get(f"/v1/meters/{METER}", headers=read_auth())).json()
    assert meter["partner_reference"] == "customer-site-123"
    assert meter["transmission_region"] == "CAISO"
    assert meter["meter_type"] == "UTILITY_METER"
    assert meter["grid"]["iso_rto"] == "CAISO"
    assert meter["details_source"] == "webhook"
    partner = (
        await client.get("/v1/partner-references/customer-site-123", headers=read_auth())
    ).json()
    assert [m["meter_id"] for m in partner["meters"]] == [METER]
    assert [h["kind"] for h in partner["history"]] == ["meter_linked"]
    # Webhook-only mode (no LEAP_API_KEY): nothing is queued for enrichment.
    assert await scalar(engine, "SELECT count(*) FROM jobs") == 0


async def test_meter_created_in_api_mode_queues_one_coalesced_refresh(
    live_app: LiveApp, engine: AsyncEngine
) -> None:
    async with live_app(leap_api_key=SecretStr("leap-key")) as (_, c):
        await send(c, events.meter_created())
        await send(c, events.global_status(status="ACTIVE"))
        await send(c, events.participation())
    assert await rows(engine, "SELECT kind, meter_id::text, status FROM jobs") == [
        ("refresh_meter", METER, "queued")
    ]


async def test_state_event_for_unknown_meter_creates_it(client: httpx.AsyncClient) -> None:
    await send(client, events.global_status(status="ELIGIBLE", partner_reference="late-site"))
    meter = (await client.get(f"/v1/meters/{METER}", headers=read_auth())).json()
    assert meter["enrollment"]["status"] == "ELIGIBLE"
    assert meter["partner_reference"] == "late-site"
    # The meter.created arriving later fills what it knows and keeps the status.
    await send(client, events.meter_created(partner_reference="late-site"))
    meter = (await client.get(f"/v1/meters/{METER}", headers=read_auth())).json()
    assert meter["enrollment"]["status"] == "ELIGIBLE"
    assert meter["meter_type"] == "UTILITY_METER"


async def test_global_status_updates_enrollment_view(client: httpx.AsyncClient) -> None:
    await send(client, events.meter_created())
    await send(client, events.global_status(status="INELIGIBLE"))
    view = (await client.get(f"/v1/meters/{METER}/enrollment", headers=read_auth())).json()
    assert view["status"] == "INELIGIBLE"
    assert view["meter_id"] == METER


async def test_participation_windows_merge_by_start(client: httpx.AsyncClient) -> None:
    await send(client, events.participation(preference="IDLE", start="2024-11-01T07:00:00Z"))
    await send(
        client,
        events.participation(preference="PARTICIPATE", start="2024-12-01T08:00:00Z", end=None),
    )
    await send(client, events.participation(preference="DISENROLL", start="2024-11-01T07:00:00Z"))
    view = (await client.get(f"/v1/meters/{METER}/enrollment", headers=read_auth())).json()
    assert view["participation_preferences"] == [
        {
            "participation_preference": "DISENROLL",
            "start_time": "2024-11-01T07:00:00Z",
            "end_time": "2024-12-01T08:00:00Z",
        },
        {
            "participation_preference": "PARTICIPATE",
            "start_time": "2024-12-01T08:00:00Z",
            "end_time": None,
        },
    ]


async def test_required_actions_set_then_cleared_by_empty_event(client: httpx.AsyncClient) -> None:
    await send(client, events.required_actions())
    view = (await client.get(f"/v1/meters/{METER}/enrollment", headers=read_auth())).json()
    assert view["status"] == "PENDING"
    assert view["status_reasons"] == ["There are missing fields: fieldname"]
    assert view["required_actions"]["partner"][0]["action_code"] == "AUTH_0001"
    await send(client, events.required_actions(actions=[]))
    view = (await client.get(f"/v1/meters/{METER}/enrollment", headers=read_auth())).json()
    assert view["status_reasons"] == []
    assert view["required_actions"]["partner"] == []


async def test_required_actions_with_empty_object_clears(client: httpx.AsyncClient) -> None:
    await send(client, events.required_actions())
    payload = events.required_actions()
    payload["required_actions"] = {}
    await send(client, payload)
    view = (await client.get(f"/v1/meters/{METER}/enrollment", headers=read_auth())).json()
    assert view["status_reasons"] == []


async def test_connect_session_and_authorization_history(client: httpx.AsyncClient) -> None:
    for status in ("CREATED", "UPDATED", "COMPLETED"):
        await send(client, events.connect_session(status=status))
    await send(client, events.authorization(status="INITIATED"))
    await send(client, events.authorization(status="COMPLETED"))
    partner = (
        await client.get("/v1/partner-references/customer-site-123", headers=read_auth())
    ).json()
    assert partner["connect_session_status"] == "COMPLETED"
    assert partner["authorization_status"] == "COMPLETED"
    assert partner["authorization_utility"] == "PGE"
    assert [(h["kind"], h["status"]) for h in partner["history"]] == [
        ("connect_session", "CREATED"),
        ("connect_session", "UPDATED"),
        ("connect_session", "COMPLETED"),
        ("authorization", "INITIATED"),
        ("authorization", "COMPLETED"),
    ]
    assert partner["meters"] == []


async def test_reference_with_several_meters_and_a_move(client: httpx.AsyncClient) -> None:
    other = "22222222-2222-2222-2222-222222222222"
    await send(client, events.meter_created(METER, "site-a"))
    await send(client, events.meter_created(other, "site-a"))
    site_a = (await client.get("/v1/partner-references/site-a", headers=read_auth())).json()
    assert sorted(m["meter_id"] for m in site_a["meters"]) == sorted([METER, other])
    # The meter moves to site-b; the move stays in both records' history.
    await send(client, events.global_status(METER, "ACTIVE", partner_reference="site-b"))
    site_a = (await client.get("/v1/partner-references/site-a", headers=read_auth())).json()
    site_b = (await client.get("/v1/partner-references/site-b", headers=read_auth())).json()
    assert [m["meter_id"] for m in site_a["meters"]] == [other]
    assert [m["meter_id"] for m in site_b["meters"]] == [METER]
    assert ("meter_unlinked", METER) in [(h["kind"], h["meter_id"]) for h in site_a["history"]]
    assert ("meter_linked", METER) in [(h["kind"], h["meter_id"]) for h in site_b["history"]]
    # An event without partner_reference does not unlink the meter.
    await send(client, events.global_status(METER, "ELIGIBLE"))
    meter = (await client.get(f"/v1/meters/{METER}", headers=read_auth())).json()
    assert meter["partner_reference"] == "site-b"


async def test_meter_without_reference_is_kept(client: httpx.AsyncClient) -> None:
    await send(client, events.meter_created(partner_reference=None))
    meter = (await client.get(f"/v1/meters/{METER}", headers=read_auth())).json()
    assert meter["partner_reference"] is None


async def test_group_updated_replaces_roster_for_its_window(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    for meter in (a, b, c):
        await send(client, events.meter_created(meter, f"site-{meter[:8]}"))
    await send(client, events.group_updated([a, b]))
    roster = (
        await client.get(f"/v1/groups/{GROUP}/meters?trade_date=2024-10-15", headers=read_auth())
    ).json()
    assert sorted(m["meter_id"] for m in roster["items"]) == sorted([a, b])
    assert roster["next_cursor"] is None
    await send(client, events.group_updated([b, c]))
    roster = (
        await client.get(f"/v1/groups/{GROUP}/meters?trade_date=2024-10-15", headers=read_auth())
    ).json()
    assert sorted(m["meter_id"] for m in roster["items"]) == sorted([b, c])
    assert {m["partner_reference"] for m in roster["items"]} == {f"site-{b[:8]}", f"site-{c[:8]}"}
    # A group has one window: an event with other dates replaces the old window too.
    await send(
        client, events.group_updated([a], start="2024-11-01T07:00:00Z", end="2024-12-01T08:00:00Z")
    )
    october = (
        await client.get(f"/v1/groups/{GROUP}/meters?trade_date=2024-10-15", headers=read_auth())
    ).json()
    november = (
        await client.get(f"/v1/groups/{GROUP}/meters?trade_date=2024-11-15", headers=read_auth())
    ).json()
    assert october["items"] == []
    assert [m["meter_id"] for m in november["items"]] == [a]
    assert await scalar(engine, "SELECT name FROM market_groups") == "PGSB_1_PDRP68"


async def test_roster_and_participation_follow_trade_date_rules(client: httpx.AsyncClient) -> None:
    may = "aaaaaaaa-0000-0000-0000-000000000005"
    june = "aaaaaaaa-0000-0000-0000-000000000006"
    await send(client, events.meter_created())
    # CAISO: May's window ends at June 1's start (07:00Z), June's starts there.
    await send(
        client,
        events.group_updated([METER], may, "MAY", "2024-05-01T07:00:00Z", "2024-06-01T07:00:00Z"),
    )
    await send(
        client,
        events.group_updated([METER], june, "JUNE", "2024-06-01T07:00:00Z", "2024-07-01T07:00:00Z"),
    )
    part = (
        await client.get(
            f"/v1/meters/{METER}/participation?from=2024-05-31&to=2024-07-01", headers=read_auth()
        )
    ).json()
    by_day = {p["trade_date"]: p for p in part["participation"]}
    assert len(part["participation"]) == 32
    assert part["time_zone"] == "America/Los_Angeles"
    assert by_day["2024-05-31"]["market_group_name"] == "MAY"
    assert by_day["2024-06-01"]["market_group_name"] == "JUNE"
    assert by_day["2024-06-01"]["trade_date_start"] == "2024-06-01T07:00:00Z"
    assert by_day["2024-06-30"]["market_group_name"] == "JUNE"
    # The group's end is when it becomes inactive: July 1 is not June's.
    assert by_day["2024-07-01"]["market_group_id"] is None
    june1_may = (
        await client.get(f"/v1/groups/{may}/meters?trade_date=2024-06-01", headers=read_auth())
    ).json()
    june1_june = (
        await client.get(f"/v1/groups/{june}/meters?trade_date=2024-06-01", headers=read_auth())
    ).json()
    assert june1_may["items"] == []
    assert [m["meter_id"] for m in june1_june["items"]] == [METER]


async def test_participation_defaults_to_three_trade_dates(client: httpx.AsyncClient) -> None:
    await send(client, events.meter_created())
    part = (await client.get(f"/v1/meters/{METER}/participation", headers=read_auth())).json()
    assert len(part["participation"]) == 3
    assert all(p["market_group_id"] is None for p in part["participation"])


async def test_roster_paginates_with_cursor(client: httpx.AsyncClient) -> None:
    members = sorted(str(uuid.uuid4()) for _ in range(25))
    await send(client, events.group_updated(members))
    seen: list[str] = []
    cursor = ""
    while True:
        url = f"/v1/groups/{GROUP}/meters?trade_date=2024-10-15&limit=10" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = (await client.get(url, headers=read_auth())).json()
        seen += [m["meter_id"] for m in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == members


async def test_group_updated_with_100k_meter_ids_in_one_event(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    members = [str(uuid.uuid4()) for _ in range(100_000)]
    content = events.body(events.group_updated(members))
    assert len(content) > 3_000_000
    response = await deliver(client, content)
    assert response.status_code == 202
    assert await scalar(engine, "SELECT count(*) FROM group_memberships") == 100_000
    # Replacing with half of them drops the other half in the same window.
    response = await deliver(client, events.body(events.group_updated(members[:50_000])))
    assert response.status_code == 202
    assert await scalar(engine, "SELECT count(*) FROM group_memberships") == 50_000
    roster = (
        await client.get(
            f"/v1/groups/{GROUP}/meters?trade_date=2024-10-15&limit=100000", headers=read_auth()
        )
    ).json()
    assert len(roster["items"]) == 50_000
    assert sorted(m["meter_id"] for m in roster["items"]) == sorted(members[:50_000])


async def test_duplicate_ids_inside_one_roster_are_stored_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await send(client, events.group_updated([METER, METER, METER]))
    assert await scalar(engine, "SELECT count(*) FROM group_memberships") == 1


async def test_linking_a_known_unlinked_meter_records_one_link(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await send(client, events.global_status(METER, "ELIGIBLE"))  # known, no reference
    await send(client, events.meter_created(METER, "site-1"))
    meter = (await client.get(f"/v1/meters/{METER}", headers=read_auth())).json()
    assert meter["partner_reference"] == "site-1"
    assert await rows(engine, "SELECT partner_reference, kind FROM partner_events") == [
        ("site-1", "meter_linked")
    ]


async def test_concurrent_events_for_one_new_meter_link_it_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    import asyncio

    payloads = [events.global_status(METER, "ELIGIBLE", partner_reference="site-1")] * 20
    answers = await asyncio.gather(*(deliver(client, events.body(p)) for p in payloads))
    assert {a.status_code for a in answers} == {202}
    assert {a.json()["status"] for a in answers} == {"accepted"}
    assert await rows(engine, "SELECT partner_reference, kind FROM partner_events") == [
        ("site-1", "meter_linked")
    ]
