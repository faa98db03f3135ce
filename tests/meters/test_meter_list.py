"""GET /v1/meters (filters, cursor pagination) and GET /v1/groups (sizes per trade date)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import events
from tests.support.http import deliver, read_auth

PROBLEM = "application/problem+json"
G1 = "10000000-0000-0000-0000-000000000001"
G2 = "20000000-0000-0000-0000-000000000002"
# A group's window ends when it becomes inactive (Leap's rule): November 1, exclusive.
OCTOBER = ("2024-10-01T07:00:00Z", "2024-11-01T07:00:00Z")
# Starts at midnight in Los Angeles: the group's days are read in that zone.
LATE_OCTOBER = ("2024-10-15T07:00:00Z", "2024-11-01T07:00:00Z")
UNKNOWN_METER = "ffffffff-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class M:
    meter_id: str
    partner_reference: str
    transmission_region: str
    enrollment_status: str
    utility_name: str | None
    load_zone: str | None
    is_archived: bool = False


# Ids sorted as the list orders them (meter_id).
INVENTORY = [
    M("00000000-aaaa-0000-0000-000000000000", "site-a", "CAISO", "ACTIVE", "PGE", "NP15"),
    M("01000000-aaaa-0000-0000-000000000000", "site-a", "CAISO", "PENDING", "PGE", "NP15"),
    M("02000000-aaaa-0000-0000-000000000000", "site-b", "CAISO", "ACTIVE", "SCE", "SP15"),
    M("03000000-aaaa-0000-0000-000000000000", "site-b", "ERCOT", "ACTIVE", None, "LZ_HOUSTON"),
    M("04000000-aaaa-0000-0000-000000000000", "site-c", "CAISO", "ELIGIBLE", "SCE", "SP15"),
    M("05000000-aaaa-0000-0000-000000000000", "site-c", "ERCOT", "ELIGIBLE", None, None),
    M("06000000-aaaa-0000-0000-000000000000", "site-d", "PJM", "ACTIVE", "PECO", None),
    M("07000000-aaaa-0000-0000-000000000000", "site-d", "CAISO", "ACTIVE", "PGE", "NP15", True),
    M("08000000-aaaa-0000-0000-000000000000", "site-e", "CAISO", "PENDING", "PGE", "SP15"),
    M("09000000-aaaa-0000-0000-000000000000", "site-e", "PJM", "INELIGIBLE", None, None),
    M("0a000000-aaaa-0000-0000-000000000000", "site-f", "ERCOT", "ACTIVE", None, "LZ_NORTH"),
    M("0b000000-aaaa-0000-0000-000000000000", "site-f", "CAISO", "ACTIVE", "SCE", "SP15", True),
]
ALL_IDS = [m.meter_id for m in INVENTORY]


async def _send(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    response = await deliver(client, events.body(payload))
    assert response.status_code == 202, response.text


async def _execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


@pytest.fixture
async def inventory(client: httpx.AsyncClient, engine: AsyncEngine) -> list[M]:
    for m in INVENTORY:
        await _send(
            client, events.meter_created(m.meter_id, m.partner_reference, m.transmission_region)
        )
        status = events.global_status(m.meter_id, m.enrollment_status, m.transmission_region)
        await _send(client, status)
        # Utility, load zone and archiving come from Leap's API records (the Leap loop).
        await _execute(
            engine,
            "UPDATE meters SET utility_name = :u, load_zone = :z, is_archived = :a "
            "WHERE meter_id = :id",
            u=m.utility_name,
            z=m.load_zone,
            a=m.is_archived,
            id=uuid.UUID(m.meter_id),
        )
    # G1 for October: meters 0-5 and one Leap has not told us about yet.
    await _send(client, events.group_updated([*ALL_IDS[:6], UNKNOWN_METER], G1, "G1", *OCTOBER))
    # G2 from the 15th: meters 4-7 (7 is archived). Its later start wins where it covers.
    await _send(client, events.group_updated(ALL_IDS[4:8], G2, "G2", *LATE_OCTOBER))
    return INVENTORY


async def _get(client: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    return await client.get(path, params=params, headers=read_auth())


async def _ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await _get(client, "/v1/meters", **params)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return [m["meter_id"] for m in response.json()["items"]]


async def _walk(client: httpx.AsyncClient, limit: int, **params: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        body = (await _get(client, "/v1/meters", limit=limit, **params, **extra)).json()
        pages.append([m["meter_id"] for m in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


# --- filters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("partner_reference", "site-c"),
        ("transmission_region", "ERCOT"),
        ("utility_name", "PGE"),
        ("load_zone", "SP15"),
        ("enrollment_status", "ACTIVE"),
        ("is_archived", True),
        ("is_archived", False),
    ],
)
async def test_each_filter_alone(
    client: httpx.AsyncClient, inventory: list[M], field: str, value: object
) -> None:
    expected = [m.meter_id for m in inventory if getattr(m, field) == value]
    assert expected
    param = str(value).lower() if isinstance(value, bool) else value
    assert await _ids(client, **{field: param}) == expected


async def test_no_filter_lists_everything_in_meter_id_order(
    client: httpx.AsyncClient, inventory: list[M]
) -> None:
    body = (await _get(client, "/v1/meters")).json()
    assert [m["meter_id"] for m in body["items"]] == ALL_IDS
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert first["partner_reference"] == "site-a"
    assert first["transmission_region"] == "CAISO"
    assert first["utility_name"] == "PGE"
    assert first["load_zone"] == "NP15"
    assert first["enrollment_status"] == "ACTIVE"
    assert first["meter_type"] == "UTILITY_METER"
    assert first["is_archived"] is False


async def test_filters_combine(client: httpx.AsyncClient, inventory: list[M]) -> None:
    assert await _ids(
        client, transmission_region="CAISO", enrollment_status="ACTIVE", is_archived="false"
    ) == [ALL_IDS[0], ALL_IDS[2]]
    assert await _ids(client, utility_name="SCE", load_zone="SP15") == [
        ALL_IDS[2],
        ALL_IDS[4],
        ALL_IDS[11],
    ]
    assert await _ids(client, partner_reference="site-a", enrollment_status="ACTIVE") == [
        ALL_IDS[0]
    ]
    assert await _ids(client, transmission_region="PJM", load_zone="SP15") == []
    everything = {
        "partner_reference": "site-b",
        "transmission_region": "CAISO",
        "utility_name": "SCE",
        "load_zone": "SP15",
        "enrollment_status": "ACTIVE",
        "is_archived": "false",
        "updated_since": "2000-01-01T00:00:00Z",
        "market_group_id": G1,
        "trade_date": "2024-10-20",
    }
    assert await _ids(client, **everything) == [ALL_IDS[2]]
    assert await _ids(client, **{**everything, "trade_date": "2024-11-20"}) == []


async def test_unknown_values_match_nothing(client: httpx.AsyncClient, inventory: list[M]) -> None:
    assert await _ids(client, partner_reference="nobody") == []
    assert await _ids(client, market_group_id=str(uuid.uuid4()), trade_date="2024-10-20") == []


async def test_updated_since(
    client: httpx.AsyncClient, engine: AsyncEngine, inventory: list[M]
) -> None:
    await _execute(engine, "UPDATE meters SET updated_at = '2024-01-01T00:00:00Z'")
    await _execute(
        engine,
        "UPDATE meters SET updated_at = '2024-06-01T12:00:00Z' WHERE meter_id = ANY(:ids)",
        ids=[uuid.UUID(i) for i in ALL_IDS[3:5]],
    )
    assert await _ids(client, updated_since="2024-06-01T12:00:00Z") == ALL_IDS[3:5]  # inclusive
    assert await _ids(client, updated_since="2024-06-01T12:00:00.000001Z") == []
    # Same instant with an offset, and without one (taken as UTC).
    assert await _ids(client, updated_since="2024-06-01T14:00:00+02:00") == ALL_IDS[3:5]
    assert await _ids(client, updated_since="2024-06-01T12:00:00") == ALL_IDS[3:5]
    assert await _ids(client, updated_since="2023-12-31T00:00:00Z") == ALL_IDS
    # A meter event bumps updated_at.
    await _send(client, events.global_status(ALL_IDS[0], "PENDING"))
    assert await _ids(client, updated_since="2024-06-02T00:00:00Z") == [ALL_IDS[0]]


# --- market group on a trade date ---------------------------------------------------------


async def _roster(client: httpx.AsyncClient, group: str, day: str) -> list[str]:
    body = (await _get(client, f"/v1/groups/{group}/meters", trade_date=day)).json()
    return [m["meter_id"] for m in body["items"]]


@pytest.mark.parametrize("day", ["2024-09-30", "2024-10-01", "2024-10-15", "2024-10-16"])
@pytest.mark.parametrize("group", [G1, G2])
async def test_group_filter_follows_roster_rules(
    client: httpx.AsyncClient, inventory: list[M], group: str, day: str
) -> None:
    listed = await _ids(client, market_group_id=group, trade_date=day, is_archived="false")
    roster = await _roster(client, group, day)
    assert listed == [m for m in roster if m != UNKNOWN_METER]


async def test_group_filter_follows_group_window_and_latest_start(
    client: httpx.AsyncClient, inventory: list[M]
) -> None:
    # G2's window starts at midnight in Los Angeles on the 15th: from that trade date its
    # later start wins for meters 4-7, whatever their own region.
    assert await _ids(client, market_group_id=G1, trade_date="2024-10-14") == ALL_IDS[:6]
    on_15th = {"trade_date": "2024-10-15"}
    assert await _ids(client, market_group_id=G1, **on_15th) == ALL_IDS[:4]
    assert await _ids(client, market_group_id=G2, **on_15th) == ALL_IDS[4:8]
    on_16th = {"trade_date": "2024-10-16"}
    assert await _ids(client, market_group_id=G1, **on_16th) == ALL_IDS[:4]
    assert await _ids(client, market_group_id=G2, **on_16th) == ALL_IDS[4:8]
    # Archived meters are members too, unless asked otherwise (the roster leaves them out).
    assert await _ids(client, market_group_id=G2, is_archived="true", **on_16th) == [ALL_IDS[7]]
    # The group becomes inactive on Nov 1: Oct 31 is in, Nov 1 is not.
    assert await _ids(client, market_group_id=G1, trade_date="2024-10-31") == ALL_IDS[:4]
    assert await _ids(client, market_group_id=G1, trade_date="2024-11-01") == []


@pytest.mark.parametrize(
    "params",
    [
        {"market_group_id": G1},
        {"trade_date": "2024-10-15"},
        {"market_group_id": G1, "trade_date": "1969-12-31"},
        {"market_group_id": G1, "trade_date": "2024-02-30"},
        {"market_group_id": "not-a-uuid", "trade_date": "2024-10-15"},
        {"market_group_id": G1, "trade_date": "3.9e-77"},  # no Unix timestamps
        {"market_group_id": G1, "trade_date": "2024-10-15T00:00:00"},
        {"updated_since": "yesterday"},
        {"updated_since": "1700000000"},
        {"updated_since": "2024-06-01"},
        {"updated_since": "0001-01-01T00:00:00+05:00"},
        {"is_archived": "maybe"},
        {"is_archived": "1"},
        {"limit": "10.0"},
        {"partner_reference": ""},
        {"utility_name": "a\x00b"},
        {"load_zone": "x" * 257},
    ],
)
async def test_bad_filters_are_422_problem(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await _get(client, "/v1/meters", **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "path",
    [
        "/v1/meters?load_zone=NP15&load_zone=SP15",
        "/v1/meters?limit=5&limit=6",
        "/v1/groups?trade_date=2024-10-15&trade_date=2024-10-16",
        f"/v1/groups/{G1}/meters?limit=1&limit=2",
        f"/v1/meters/{ALL_IDS[0]}/participation?from=2024-10-01&from=2024-10-02",
        "/v1/partner-references/site-a?x=1&x=2",
    ],
)
async def test_a_parameter_given_twice_is_422(client: httpx.AsyncClient, path: str) -> None:
    # Rather than a filter silently keeping only its last value.
    response = await client.get(path, headers=read_auth())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM


async def test_list_needs_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/meters")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM


# --- pagination ---------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 5, 6, 11, 12, 13])
async def test_walk_returns_every_meter_once(
    client: httpx.AsyncClient, inventory: list[M], limit: int
) -> None:
    pages = await _walk(client, limit)
    assert [m for page in pages for m in page] == ALL_IDS
    assert all(len(page) == limit for page in pages[:-1])
    # next_cursor is null on the last page, which is never empty (12 = 2 x 6 included).
    assert len(pages) == -(-len(ALL_IDS) // limit)
    assert pages[-1]


async def test_walk_with_filters(client: httpx.AsyncClient, inventory: list[M]) -> None:
    pages = await _walk(client, 2, transmission_region="CAISO", is_archived="false")
    expected = [m.meter_id for m in inventory if m.transmission_region == "CAISO"]
    expected = [m for m in expected if m not in (ALL_IDS[7], ALL_IDS[11])]
    assert [m for page in pages for m in page] == expected
    pages = await _walk(client, 2, market_group_id=G1, trade_date="2024-10-20")
    assert [m for page in pages for m in page] == ALL_IDS[:4]


async def test_walk_stays_consistent_while_meters_change(
    client: httpx.AsyncClient, engine: AsyncEngine, inventory: list[M]
) -> None:
    seen: list[str] = []
    cursor: str | None = None
    round_ = 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        body = await _get(client, "/v1/meters", limit=3, transmission_region="CAISO", **extra)
        page = body.json()
        seen += [m["meter_id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # Between pages every meter changes (updated_at moves on, statuses flip), behind
        # and ahead of the cursor; and a new CAISO meter appears behind it.
        round_ += 1
        for m in inventory:
            status = "PENDING" if round_ % 2 else "ACTIVE"
            await _send(client, events.global_status(m.meter_id, status, m.transmission_region))
        newcomer = f"00000000-0000-0000-0000-{round_:012d}"
        await _send(client, events.meter_created(newcomer, "site-new"))
    caiso = [m.meter_id for m in inventory if m.transmission_region == "CAISO"]
    assert seen == caiso
    assert round_ >= 2


async def test_default_limit_and_bounds(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _execute(
        engine,
        "INSERT INTO meters (meter_id, transmission_region) "
        "SELECT gen_random_uuid(), 'CAISO' FROM generate_series(1, 1005)",
    )
    default = (await _get(client, "/v1/meters")).json()
    assert len(default["items"]) == 100
    assert default["next_cursor"] is not None
    most = (await _get(client, "/v1/meters", limit=1000)).json()
    assert len(most["items"]) == 1000
    rest = (await _get(client, "/v1/meters", limit=1000, cursor=most["next_cursor"])).json()
    assert len(rest["items"]) == 5
    assert rest["next_cursor"] is None
    ids = [m["meter_id"] for m in most["items"] + rest["items"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1005
    assert ids[:100] == [m["meter_id"] for m in default["items"]]
    for bad in (0, -1, 1001, "ten"):
        response = await _get(client, "/v1/meters", limit=bad)
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == PROBLEM


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "!!!!",
        "not a cursor",
        "é",
        "",
        _b64(uuid.uuid4().bytes),  # right size for a uuid, no version
        _b64(b"\x02" + uuid.uuid4().bytes),  # unknown version
        _b64(b"\x01" + uuid.uuid4().bytes + b"x"),
        str(uuid.uuid4()),
        "A" * 65,
    ],
)
async def test_bad_cursor_is_422_problem(
    client: httpx.AsyncClient, inventory: list[M], cursor: str
) -> None:
    response = await _get(client, "/v1/meters", cursor=cursor)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM


async def test_cursor_is_opaque_and_url_safe(client: httpx.AsyncClient, inventory: list[M]) -> None:
    cursor = (await _get(client, "/v1/meters", limit=2)).json()["next_cursor"]
    assert cursor.isascii()
    assert not set(cursor) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert ALL_IDS[1] not in cursor


# --- GET /v1/groups -----------------------------------------------------------------------


async def _groups(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await _get(client, "/v1/groups", **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("day", "g1", "g2"),
    [
        ("2024-09-30", None, None),
        ("2024-10-02", 7, None),  # six known meters and one not yet known
        ("2024-10-15", 5, 3),  # meters 4-6 moved to G2 (7 is archived)
        ("2024-10-16", 5, 3),
        ("2024-10-31", 5, 3),
        ("2024-11-01", None, None),
    ],
)
async def test_group_counts_follow_roster_rules(
    client: httpx.AsyncClient, inventory: list[M], day: str, g1: int | None, g2: int | None
) -> None:
    body = await _groups(client, trade_date=day)
    assert body["trade_date"] == day
    counts = {g["market_group_id"]: g["meter_count"] for g in body["items"]}
    expected = {g: n for g, n in ((G1, g1), (G2, g2)) if n is not None}
    assert counts == expected
    for group, count in counts.items():
        assert count == len(await _roster(client, group, day))
    names = {g["market_group_id"]: g["market_group_name"] for g in body["items"]}
    assert names == {g: name for g, name in ((G1, "G1"), (G2, "G2")) if g in expected}


async def test_group_counts_default_to_today_in_each_groups_zone(
    client: httpx.AsyncClient, inventory: list[M]
) -> None:
    # Without a date each group is counted on today in its own zone: October 2024's
    # groups have no member today.
    body = await _groups(client)
    assert body["trade_date"] is None
    assert body["items"] == []


async def test_group_counts_follow_archiving_and_new_rosters(
    client: httpx.AsyncClient, engine: AsyncEngine, inventory: list[M]
) -> None:
    await _execute(
        engine,
        "UPDATE meters SET is_archived = true WHERE meter_id = :id",
        id=uuid.UUID(ALL_IDS[0]),
    )
    await _send(client, events.group_updated(ALL_IDS[:2], G2, "G2 renamed", *LATE_OCTOBER))
    body = await _groups(client, trade_date="2024-10-20")
    day = {"time_zone": "America/Los_Angeles", "trade_date": "2024-10-20"}
    regions = {m.meter_id: m.transmission_region for m in INVENTORY}
    # A group's region shows when its members share one.
    g2_region = regions[ALL_IDS[1]]
    assert body["items"] == [
        {
            "market_group_id": G1,
            "market_group_name": "G1",
            **day,
            "meter_count": 5,
            "transmission_region": None,
        },
        {
            "market_group_id": G2,
            "market_group_name": "G2 renamed",
            **day,
            "meter_count": 1,
            "transmission_region": g2_region,
        },
    ]


@pytest.mark.parametrize(
    "day", ["1969-12-31", "2200-01-01", "2024-13-01", "today", "3.9e-77", "2024-10-15T00:00:00"]
)
async def test_group_counts_bad_trade_date_is_422(client: httpx.AsyncClient, day: str) -> None:
    response = await _get(client, "/v1/groups", trade_date=day)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
