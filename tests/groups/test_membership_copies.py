"""Membership rows' copies of their meter's reference and archived flag (app/groups/copies.py).

A roster reads the copies once a row is confirmed and the meter row before. These tests
show the copies follow every meter writer, that the confirm round waits for a meter
write that raced a membership write (and what went wrong without the wait), and that a
meter writer racing the confirm round wins.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.db import session_factory
from app.groups import copies
from app.groups import repository as groups
from app.meters.repository import MeterFacts, apply_meter_facts, archive_unseen, store_leap_meters
from tests.leap_rules.rest import get, send
from tests.support import events
from tests.support.live import LiveApp

GROUP = "406720c2-0175-4137-9ff1-1641702292d4"
METER = "8fa85f64-5717-4562-b3fc-2c963f66afa1"
UNKNOWN = "9fa85f64-5717-4562-b3fc-2c963f66afa2"
OCTOBER = ("2024-10-01T07:00:00Z", "2024-11-01T07:00:00Z")
DAY = "2024-10-15"


async def _roster(client: httpx.AsyncClient) -> dict[str, str | None]:
    page = await get(client, f"/v1/groups/{GROUP}/meters?trade_date={DAY}")
    return {m["meter_id"]: m["partner_reference"] for m in page["items"]}


async def _copies(engine: AsyncEngine) -> dict[str, tuple[str | None, bool | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT meter_id, partner_reference, meter_archived FROM group_memberships")
        )
        return {str(r.meter_id): (r.partner_reference, r.meter_archived) for r in rows}


async def test_group_rows_start_unconfirmed_and_read_the_meter_row(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await send(client, events.meter_created(METER, "site-a", region="CAISO"))
    await send(client, events.group_updated([METER, UNKNOWN], GROUP, "G", *OCTOBER))
    assert await _copies(engine) == {METER: (None, None), UNKNOWN: (None, None)}
    assert await _unbeaten(engine) == {GROUP: None}
    assert await _roster(client) == {METER: "site-a", UNKNOWN: None}
    # Confirmed: an unknown meter's copy says what its missing row would.
    assert await copies.confirm(engine) == 2
    assert await _copies(engine) == {METER: ("site-a", False), UNKNOWN: (None, False)}
    assert await _roster(client) == {METER: "site-a", UNKNOWN: None}
    assert await copies.confirm(engine) == 0


async def test_confirmed_copies_follow_every_meter_writer(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await send(client, events.meter_created(METER, "site-a", region="CAISO"))
    await send(client, events.group_updated([METER, UNKNOWN], GROUP, "G", *OCTOBER))
    await copies.confirm(engine)
    # A webhook moves the reference; the unknown meter becomes known.
    await send(client, events.meter_created(METER, "site-b", region="CAISO"))
    await send(client, events.meter_created(UNKNOWN, "site-u", region="CAISO"))
    assert await _copies(engine) == {METER: ("site-b", False), UNKNOWN: ("site-u", False)}
    assert await _roster(client) == {METER: "site-b", UNKNOWN: "site-u"}
    # Leap's record (a reconciliation page) archives one and moves the other's reference.
    sessions = session_factory(engine)
    async with sessions() as session:
        stamp = datetime(2030, 1, 1, tzinfo=UTC).isoformat()
        await store_leap_meters(
            session,
            [
                {
                    "meter_id": METER,
                    "partner_reference": "site-c",
                    "is_archived": False,
                    "leap_updated_at": stamp,
                },
                {
                    "meter_id": UNKNOWN,
                    "partner_reference": "site-u",
                    "is_archived": True,
                    "leap_updated_at": stamp,
                },
            ],
            run_id=None,
        )
        await session.commit()
    assert await _copies(engine) == {METER: ("site-c", False), UNKNOWN: ("site-u", True)}
    assert await _roster(client) == {METER: "site-c"}
    # A full run that no longer sees a meter archives it.
    async with sessions() as session:
        await archive_unseen(session, run_id=-1, started=datetime(2100, 1, 1, tzinfo=UTC))
        await session.commit()
    assert await _copies(engine) == {METER: ("site-c", True), UNKNOWN: ("site-u", True)}
    assert await _roster(client) == {}
    # An event about an archived meter brings it back (as it always did).
    await send(client, events.meter_created(METER, "site-c", region="CAISO"))
    assert await _roster(client) == {METER: "site-c"}


async def _write_group(conn: AsyncConnection, meter_ids: list[uuid.UUID]) -> None:
    """The membership write group.updated does, left uncommitted on `conn`."""
    session = AsyncSession(bind=conn)
    await groups.replace_group(
        session,
        uuid.UUID(GROUP),
        "G",
        (datetime(2024, 10, 1, 7, tzinfo=UTC), datetime(2024, 11, 1, 7, tzinfo=UTC)),
        (date(2024, 10, 1), date(2024, 10, 31)),
        "America/Los_Angeles",
        meter_ids,
        uuid.uuid4(),
    )
    await session.flush()


async def _move_reference(conn: AsyncConnection, reference: str) -> None:
    """A meter event's effects (the webhook statement), left uncommitted on `conn`."""
    facts = MeterFacts(meter_id=uuid.UUID(METER), partner_reference=reference)
    await apply_meter_facts(conn, facts, uuid.uuid4(), refresh=False)


async def _race(engine: AsyncEngine) -> tuple[AsyncConnection, AsyncConnection]:
    """A group write and a meter event that overlap so neither sees the other's rows:
    the meter statement starts before the group write commits. The group write is
    committed on return; the meter event is still open."""
    group_conn = await engine.connect()
    meter_conn = await engine.connect()
    await _write_group(group_conn, [uuid.UUID(METER)])
    await _move_reference(meter_conn, "site-new")  # does not see the new rows
    await group_conn.commit()
    return group_conn, meter_conn


async def test_confirm_waits_for_a_meter_write_that_missed_the_rows(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await send(client, events.meter_created(METER, "site-old", region="CAISO"))
    group_conn, meter_conn = await _race(engine)
    try:
        confirming = asyncio.ensure_future(copies.confirm(engine))
        await asyncio.sleep(0.5)
        assert not confirming.done()  # waiting for the meter event's transaction
        await meter_conn.commit()
        assert await asyncio.wait_for(confirming, 10) == 1
    finally:
        await group_conn.close()
        await meter_conn.close()
    assert await _copies(engine) == {METER: ("site-new", False)}
    assert await _roster(client) == {METER: "site-new"}


async def test_without_the_wait_a_racing_meter_write_would_be_lost(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Why confirm waits: filled while the meter event is still open, the copy keeps the
    old reference and nothing repairs it. (Done here by calling `fill` directly.)"""
    await send(client, events.meter_created(METER, "site-old", region="CAISO"))
    group_conn, meter_conn = await _race(engine)
    try:
        async with engine.connect() as conn:
            rr = await conn.execution_options(isolation_level="REPEATABLE READ")
            seqs = await copies.unconfirmed_writes(rr)
            await rr.commit()
            assert await copies.fill(rr, seqs) == 1
        await meter_conn.commit()
    finally:
        await group_conn.close()
        await meter_conn.close()
    assert await _copies(engine) == {METER: ("site-old", False)}  # stale for good
    assert await _roster(client) == {METER: "site-old"}


async def test_a_meter_writer_racing_the_fill_wins(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await send(client, events.meter_created(METER, "site-old", region="CAISO"))
    await send(client, events.group_updated([METER], GROUP, "G", *OCTOBER))
    async with engine.connect() as meter_conn:
        # This meter event sees the unconfirmed row and rewrites its copy (uncommitted).
        await _move_reference(meter_conn, "site-new")
        async with engine.connect() as conn:
            rr = await conn.execution_options(isolation_level="REPEATABLE READ")
            seqs = await copies.unconfirmed_writes(rr)
            await rr.commit()
            filling = asyncio.ensure_future(copies.fill(rr, seqs))
            await asyncio.sleep(0.3)
            assert not filling.done()  # the row is locked by the meter event
            await meter_conn.commit()
            with pytest.raises(DBAPIError) as raised:
                await filling
            assert getattr(raised.value.orig, "sqlstate", None) == copies.SERIALIZATION_FAILURE
    assert await _copies(engine) == {METER: ("site-new", False)}
    assert await _roster(client) == {METER: "site-new"}
    # The next round confirms the row, keeping the event's value.
    assert await copies.confirm_round(engine) == 1
    assert await _copies(engine) == {METER: ("site-new", False)}
    assert await _unbeaten(engine) == {GROUP: True}


async def test_the_worker_confirms_new_rows(live_app: LiveApp, engine: AsyncEngine) -> None:
    async with live_app(run_worker=True) as (_, client):
        await send(client, events.meter_created(METER, "site-a", region="CAISO"))
        await send(client, events.group_updated([METER], GROUP, "G", *OCTOBER))
        for _ in range(100):
            if await _copies(engine) == {METER: ("site-a", False)}:
                break
            await asyncio.sleep(0.1)
        assert await _copies(engine) == {METER: ("site-a", False)}
        assert await _roster(client) == {METER: "site-a"}


LATE_OCTOBER = ("2024-10-16T07:00:00Z", "2024-11-01T07:00:00Z")
LATER_GROUP = "78e4e059-3326-49db-8781-b0d997b03a2a"


async def _unbeaten(engine: AsyncEngine) -> dict[str, bool | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT market_group_id, unbeaten FROM group_memberships"))
        return {str(r.market_group_id): r.unbeaten for r in rows}


async def _members(client: httpx.AsyncClient, group: str, day: str) -> list[str]:
    page = await get(client, f"/v1/groups/{group}/meters?trade_date={day}")
    return [m["meter_id"] for m in page["items"]]


async def test_unbeaten_flags_follow_new_and_removed_windows(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await send(client, events.meter_created(METER, "site-a", region="CAISO"))
    await send(client, events.group_updated([METER], GROUP, "G", *OCTOBER))
    await copies.confirm(engine)
    assert await _unbeaten(engine) == {GROUP: True}
    # A later group starting October 16 outranks October's window from then on. Until the
    # confirm round runs, October's row still says unbeaten: rosters must not trust it.
    await send(client, events.group_updated([METER], LATER_GROUP, "L", *LATE_OCTOBER))
    assert await _unbeaten(engine) == {GROUP: True, LATER_GROUP: None}
    assert await _members(client, GROUP, "2024-10-20") == []
    assert await _members(client, LATER_GROUP, "2024-10-20") == [METER]
    assert await _members(client, GROUP, "2024-10-10") == [METER]
    await copies.confirm(engine)
    assert await _unbeaten(engine) == {GROUP: False, LATER_GROUP: True}
    assert await _members(client, GROUP, "2024-10-20") == []
    assert await _members(client, GROUP, "2024-10-10") == [METER]
    assert await _members(client, LATER_GROUP, "2024-10-20") == [METER]
    # The later group lets the meter go: October's window wins its late days again (its
    # flag stays false, so the roster checks, and finds nothing above it).
    await send(client, events.group_updated([], LATER_GROUP, "L", *LATE_OCTOBER))
    await copies.confirm(engine)
    assert await _unbeaten(engine) == {GROUP: False}
    assert await _members(client, GROUP, "2024-10-20") == [METER]
    groups = await get(client, "/v1/groups?trade_date=2024-10-20")
    assert [(g["market_group_id"], g["meter_count"]) for g in groups["items"]] == [(GROUP, 1)]


async def test_confirm_works_in_batches(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copies, "BATCH_METERS", 3)
    meters = [str(uuid.UUID(int=i + 1)) for i in range(10)]
    for i, meter in enumerate(meters[:4]):
        await send(client, events.meter_created(meter, f"site-{i}", region="CAISO"))
    await send(client, events.group_updated(meters, GROUP, "G", *OCTOBER))
    assert await copies.confirm(engine) == 10
    found = await _copies(engine)
    assert found == {m: (f"site-{i}" if i < 4 else None, False) for i, m in enumerate(meters)}
    assert await _unbeaten(engine) == {GROUP: True}
    page = await get(client, f"/v1/groups/{GROUP}/meters?trade_date={DAY}")
    assert [m["meter_id"] for m in page["items"]] == sorted(meters)
