"""GET /v1/changes: what each write records, the page rules, long polls and retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.changes.retention import ChangeRetention
from app.clock import utc_now
from app.meters import repository as meters
from tests.support import events
from tests.support.db import scalar
from tests.support.http import deliver, read_auth

METER = events.CAISO_METER
GROUP = "406720c2-0175-4137-9ff1-1641702292d4"


async def send(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    response = await deliver(client, events.body(payload))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"


async def changes(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.get("/v1/changes", params=params, headers=read_auth())


async def feed(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await changes(client, **params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def collect(client: httpx.AsyncClient, count: int, **params: Any) -> dict[str, Any]:
    """The next `count` changes (a page of them, with its next_cursor). Rows show once
    every older writing transaction on the server has ended, so pages long-poll."""
    items: list[dict[str, Any]] = []
    cursor = params.pop("after", None)
    for _ in range(100):
        if len(items) >= count:
            break
        page = await feed(client, **params, **({"after": cursor} if cursor else {}), wait="10")
        items += page["items"]
        cursor = page["next_cursor"]
    return {"items": items, "next_cursor": cursor}


def kinds(page: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(c["type"], c["partner_reference"]) for c in page["items"]]


async def test_meter_events_record_upserts_links_and_enrollment(client: httpx.AsyncClient) -> None:
    await send(client, events.meter_created(partner_reference="site-a"))
    first = await collect(client, 2)
    assert kinds(first) == [("meter.upserted", "site-a"), ("meter.linked", "site-a")]
    assert all(c["meter_id"] == METER for c in first["items"])
    assert first["next_cursor"] == first["items"][-1]["cursor"]

    await send(client, events.meter_created(partner_reference="site-b"))
    await send(client, events.global_status(status="ACTIVE"))
    moved = await collect(client, 4, after=first["next_cursor"])
    assert kinds(moved) == [
        ("meter.upserted", "site-b"),
        ("meter.unlinked", "site-a"),
        ("meter.linked", "site-b"),
        ("enrollment.changed", "site-b"),
    ]
    assert moved["items"][-1]["summary"] == {"enrollment_status": "ACTIVE"}

    # An empty page gives back the cursor it was asked from.
    empty = await feed(client, after=moved["next_cursor"])
    assert empty == {"items": [], "next_cursor": moved["next_cursor"]}
    only_links = await collect(client, 3, types="meter.linked,meter.unlinked")
    assert [c["type"] for c in only_links["items"]] == [
        "meter.linked",
        "meter.unlinked",
        "meter.linked",
    ]
    # A duplicate delivery applies nothing, so records nothing.
    again = events.body(events.global_status(status="PENDING"))
    for _ in range(2):
        assert (await deliver(client, again)).status_code in (200, 202)
    after_dupes = await collect(client, 1, after=moved["next_cursor"])
    assert kinds(after_dupes) == [("enrollment.changed", "site-b")]


async def test_group_updated_records_one_change_with_the_trade_dates(
    client: httpx.AsyncClient,
) -> None:
    members = [events.CAISO_METER, "22222222-2222-2222-2222-222222222222"]
    await send(client, events.group_updated(members))
    await send(
        client,
        events.group_updated(members[:1], start="2024-11-01T07:00:00Z", end="2024-11-30T08:00:00Z"),
    )
    page = await collect(client, 2, types="group.changed")
    assert [(c["market_group_id"], c["summary"]) for c in page["items"]] == [
        (GROUP, {"first_trade_date": "2024-10-01", "last_trade_date": "2024-10-30"}),
        # The second covers the days the old window left and those the new one takes.
        (GROUP, {"first_trade_date": "2024-10-01", "last_trade_date": "2024-11-29"}),
    ]


async def test_bad_parameters_are_422(client: httpx.AsyncClient) -> None:
    for params in (
        {"wait": "31"},
        {"after": "not-a-cursor"},
        {"after": "1-2-3"},
        {"after": "99999999999999999999-1"},
        {"limit": "1001"},
        {"limit": "0"},
        {"types": "meter.exploded"},
    ):
        response = await changes(client, **params)
        assert response.status_code == 422, (params, response.text)
    assert (await client.get("/v1/changes")).status_code == 401


async def test_long_poll_answers_when_a_change_commits(client: httpx.AsyncClient) -> None:
    await send(client, events.meter_created(partner_reference="before"))
    start = (await collect(client, 2))["next_cursor"]
    waiting = asyncio.ensure_future(changes(client, after=start, wait="25"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    other = "22222222-2222-2222-2222-222222222222"
    await send(client, events.meter_created(meter_id=other, partner_reference=None))
    response = await waiting
    assert response.status_code == 200
    assert [(c["type"], c["meter_id"]) for c in response.json()["items"]] == [
        ("meter.upserted", other)
    ]


async def test_a_cursor_older_than_retention_is_gone(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for reference in ("r1", "r2", "r3"):
        await send(client, events.meter_created(partner_reference=reference))
    everything = (await collect(client, 8))["items"]
    assert len(everything) == 8  # upserted+linked, then upserted+unlinked+linked twice
    old_cursor = everything[0]["cursor"]
    xid, change_id = everything[4]["cursor"].split("-")
    async with engine.begin() as conn:
        # The first two meter events are 8 days old (in feed order: a prefix).
        await conn.execute(
            text(
                "UPDATE changes SET at = now() - interval '8 days' "
                "WHERE (xid, id) <= (CAST(CAST(:x AS text) AS xid8), CAST(:i AS bigint))"
            ),
            {"x": xid, "i": int(change_id)},
        )
    retention = ChangeRetention(sessions, days=7)
    await retention.prune_changes()
    assert await scalar(engine, "SELECT count(*) FROM changes") == 3
    response = await changes(client, after=old_cursor)
    assert response.status_code == 410
    oldest = response.json()["oldest_cursor"]
    assert oldest == everything[4]["cursor"]
    resumed = await feed(client, after=oldest)
    assert resumed["items"] == everything[5:]
    # Without `after`, the list starts at the oldest change kept.
    assert (await feed(client))["items"] == everything[5:]


async def test_archiving_unseen_meters_records_meter_archived(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await send(client, events.meter_created(partner_reference="site-z"))
    start = (await collect(client, 2))["next_cursor"]
    async with sessions() as session:
        archived = await meters.archive_unseen(session, 1, utc_now() + timedelta(seconds=1))
        await session.commit()
    assert archived == 1
    page = await collect(client, 1, after=start)
    assert [(c["type"], c["meter_id"], c["partner_reference"]) for c in page["items"]] == [
        ("meter.archived", METER, "site-z")
    ]


async def _first_events(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    count: int,
    opened: asyncio.Event | None = None,
) -> list[tuple[str, str]]:
    """The first `count` (id, type) of a stream opened with `headers`; `opened` is set at
    its first line (its start was fixed before it)."""
    seen: list[tuple[str, str]] = []
    async with client.stream(
        "GET", "/v1/changes", headers={**read_auth(), "Accept": "text/event-stream", **headers}
    ) as response:
        assert response.status_code == 200
        event_id = None
        async for line in response.aiter_lines():
            if opened is not None:
                opened.set()
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: ") and event_id is not None:
                seen.append((event_id, line[7:]))
                if len(seen) == count:
                    break
    return seen


async def test_a_stream_starts_at_the_end_or_after_last_event_id(client: httpx.AsyncClient) -> None:
    await send(client, events.meter_created(partner_reference="old"))
    old = await collect(client, 2)
    # Without Last-Event-ID: only what commits after the stream opened.
    opened = asyncio.Event()
    streaming = asyncio.ensure_future(_first_events(client, {}, 1, opened))
    await asyncio.wait_for(opened.wait(), 30)
    await send(client, events.global_status(status="ACTIVE"))
    [(new_id, new_type)] = await asyncio.wait_for(streaming, 60)
    assert new_type == "enrollment.changed"
    # Resuming after the first change: the second, then the new one.
    resumed = await _first_events(client, {"Last-Event-ID": old["items"][0]["cursor"]}, 2)
    assert resumed == [(old["items"][1]["cursor"], "meter.linked"), (new_id, new_type)]
    bad = await client.get(
        "/v1/changes", headers={**read_auth(), "Accept": "text/event-stream", "Last-Event-ID": "x"}
    )
    assert bad.status_code == 422
