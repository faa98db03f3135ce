"""Membership copies and `unbeaten` flags under concurrent writers: webhook meter events,
Leap's meter pages, group.updated events and confirm rounds all at once. Afterwards
every row must say what `meters` and the other windows say, and every roster must be
what Leap's ranking gives, computed here in Python from the stored rows."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import session_factory
from app.groups import copies
from app.meters.repository import store_leap_meters
from tests.leap_rules.rest import get, send
from tests.support import events

METERS = [str(uuid.UUID(int=0x1000 + i)) for i in range(40)]
GROUPS = [str(uuid.UUID(int=0x2000 + g)) for g in range(3)]
# Windows that overlap in different ways (Pacific midnights), so flags matter.
WINDOWS = [
    ("2024-10-01T07:00:00Z", "2024-11-01T07:00:00Z"),
    ("2024-10-10T07:00:00Z", "2024-10-20T07:00:00Z"),
    ("2024-10-16T07:00:00Z", "2024-11-01T07:00:00Z"),
]
DAYS = [date(2024, 10, d) for d in (1, 9, 10, 15, 16, 19, 20, 25, 31)]


async def _webhooks(client: httpx.AsyncClient, rng: random.Random) -> None:
    for _ in range(120):
        meter = rng.choice(METERS)
        await send(client, events.meter_created(meter, f"site-{rng.randrange(5)}"))


async def _leap_pages(engine: AsyncEngine, rng: random.Random) -> None:
    sessions = session_factory(engine)
    stamp = datetime(2030, 1, 1, tzinfo=UTC)
    for _ in range(30):
        stamp += timedelta(minutes=1)
        records = [
            {
                "meter_id": meter,
                "partner_reference": f"leap-{rng.randrange(5)}",
                "is_archived": rng.random() < 0.3,
                "leap_updated_at": stamp.isoformat(),
            }
            for meter in rng.sample(METERS, 5)
        ]
        async with sessions() as session:
            await store_leap_meters(session, records, run_id=None)
            await session.commit()
        await asyncio.sleep(0)


async def _groups(client: httpx.AsyncClient, rng: random.Random) -> None:
    for _ in range(25):
        group = rng.choice(GROUPS)
        start, end = rng.choice(WINDOWS)
        members = rng.sample(METERS, rng.randrange(0, 25))
        await send(client, events.group_updated(members, group, "G", start, end))


async def _confirm_rounds(engine: AsyncEngine, done: asyncio.Event) -> int:
    confirmed = 0
    while not done.is_set():
        confirmed += await copies.confirm_round(engine)
        await asyncio.sleep(0.01)
    return confirmed


async def _truth(engine: AsyncEngine) -> tuple[dict[tuple[str, date], list[str]], int, int]:
    """Rosters by Leap's ranking from the stored rows, and how many rows' copies and
    flags disagree with `meters` and the other windows."""
    async with engine.connect() as conn:
        meters = {
            str(r.meter_id): (r.partner_reference, r.is_archived)
            for r in await conn.execute(
                text("SELECT meter_id, partner_reference, is_archived FROM meters")
            )
        }
        rows = list(
            await conn.execute(
                text(
                    "SELECT market_group_id, meter_id, window_start, seq, window_end, source, "
                    "first_day, last_day, partner_reference, meter_archived, unbeaten "
                    "FROM group_memberships"
                )
            )
        )

    def rank(r: object) -> tuple[object, ...]:
        return (r.window_start, r.seq, str(r.market_group_id), r.window_end, r.source)  # type: ignore[attr-defined]

    wrong_copies = sum(
        1
        for r in rows
        if (r.partner_reference, r.meter_archived) != meters.get(str(r.meter_id), (None, False))
    )
    wrong_flags = 0
    for r in rows:
        beaten = any(
            o.meter_id == r.meter_id
            and o.first_day <= r.last_day
            and o.last_day >= r.first_day
            and rank(o) > rank(r)
            for o in rows
        )
        # A stale false is allowed (removing a window never sets the flag); a true on a
        # beaten row, or a row left unconfirmed, is not.
        wrong_flags += r.unbeaten is None or (r.unbeaten and beaten)
    rosters: dict[tuple[str, date], list[str]] = {}
    for day in DAYS:
        winners: dict[str, object] = {}
        for r in rows:
            if r.first_day <= day <= r.last_day:
                best = winners.get(str(r.meter_id))
                if best is None or rank(r) > rank(best):
                    winners[str(r.meter_id)] = r
        for group in GROUPS:
            rosters[(group, day)] = sorted(
                m
                for m, r in winners.items()
                if str(r.market_group_id) == group  # type: ignore[attr-defined]
                and not meters.get(m, (None, False))[1]
            )
    return rosters, wrong_copies, wrong_flags


async def test_copies_and_flags_hold_under_concurrent_writers(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    rng = random.Random(17)
    done = asyncio.Event()
    confirming = asyncio.ensure_future(_confirm_rounds(engine, done))
    await asyncio.gather(
        _webhooks(client, random.Random(rng.random())),
        _webhooks(client, random.Random(rng.random())),
        _leap_pages(engine, random.Random(rng.random())),
        _groups(client, random.Random(rng.random())),
    )
    done.set()
    assert await confirming > 0  # rounds confirmed rows while the writers ran
    # Then group by group, each confirmed before the next: newer windows must take the
    # flag from rows confirmed in earlier rounds.
    tail = random.Random(rng.random())
    for group in [*GROUPS, *GROUPS]:
        start, end = tail.choice(WINDOWS)
        members = tail.sample(METERS, 20)
        await send(client, events.group_updated(members, group, "G", start, end))
        assert await copies.confirm(engine) > 0
    rosters, wrong_copies, wrong_flags = await _truth(engine)
    assert (wrong_copies, wrong_flags) == (0, 0)
    assert any(rosters.values())  # the scenario does build rosters
    for (group, day), expected in rosters.items():
        page = await get(client, f"/v1/groups/{group}/meters?trade_date={day}")
        assert sorted(m["meter_id"] for m in page["items"]) == expected, (group, day)
