"""Commit order is not insert order: followers never miss nor repeat a change.

Writers here insert changes in one order and commit in the reverse one (the first to
insert commits last), some roll back, while followers read the feed through two replicas
(pages, long polls and a Server-Sent Events stream) and must each end with exactly the
committed changes, each once, in cursor order.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.changes import repository as changes
from app.changes.repository import ChangeType
from tests.support.db import rows
from tests.support.http import read_auth
from tests.support.live import LiveApp
from tests.support.wait import wait_for


def position(cursor: str) -> tuple[int, int]:
    xid, change_id = cursor.split("-")
    return int(xid), int(change_id)


async def record(session: AsyncSession, tag: str) -> None:
    await changes.record(
        session, ChangeType.METER_UPSERTED, meter_id=uuid.uuid4(), summary={"tag": tag}
    )


async def page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/changes", params=params, headers=read_auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_change_committed_late_with_a_lower_id_is_not_skipped(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    """The deterministic case: T1 inserts first (lower id), T2 inserts and commits, a
    reader reads, then T1 commits. A reader by id would have passed T1's row for good."""
    async with sessions() as first, sessions() as second:
        await record(first, "first")
        await record(second, "second")
        await second.commit()
        seen = await page(client)  # T1 still running: T2's row is held back with it
        naive_cursor = max((r.id for r in await rows(engine, "SELECT id FROM changes")), default=0)
        await first.commit()
    # Follow on from the cursor the reader got: both changes, each once, T1's first.
    tags = [c["summary"]["tag"] for c in seen["items"]]
    cursor = seen["next_cursor"]
    for _ in range(10):
        if len(tags) >= 2:
            break
        more = await page(client, after=cursor, wait="10")
        tags += [c["summary"]["tag"] for c in more["items"]]
        cursor = more["next_cursor"]
    assert tags == ["first", "second"]
    assert (await page(client, after=cursor))["items"] == []
    # What a reader ordered by insert id alone would have done: passed T1's row.
    late = await rows(engine, "SELECT id FROM changes WHERE id > :after", after=naive_cursor)
    assert late == []


async def _writer(
    sessions: async_sessionmaker[AsyncSession],
    index: int,
    writers: int,
    rng: random.Random,
    commits: list[int],
) -> list[str]:
    """Insert early, commit late: writer 0 inserts first and commits last. Every fifth
    rolls back. Returns the tags it committed."""
    await asyncio.sleep(index * 0.01)
    tags = [f"w{index}-{n}" for n in range(rng.randint(1, 4))]
    async with sessions() as session:
        for tag in tags:
            await record(session, tag)
            await asyncio.sleep(rng.random() * 0.005)
        await asyncio.sleep((writers - index) * 0.01 + rng.random() * 0.02)
        if index % 5 == 4:
            await session.rollback()
            return []
        await session.commit()
        commits.append(index)
    return tags


async def _follow_pages(
    replicas: list[httpx.AsyncClient], done: asyncio.Event, expected: list[int]
) -> list[tuple[str, str]]:
    """Pages of at most 7, each asked of the next replica, long polling when caught up."""
    seen: list[tuple[str, str]] = []
    cursor: str | None = None
    turn = 0
    while not (done.is_set() and len(seen) >= expected[0]):
        client = replicas[turn % len(replicas)]
        turn += 1
        params: dict[str, Any] = {"limit": 7, "wait": "2"}
        if cursor is not None:
            params["after"] = cursor
        body = await page(client, **params)
        seen += [(c["cursor"], c["summary"]["tag"]) for c in body["items"]]
        cursor = body["next_cursor"]
    return seen


async def _sse_events(client: httpx.AsyncClient, start: str) -> AsyncIterator[tuple[str, str]]:
    headers = {**read_auth(), "Accept": "text/event-stream", "Last-Event-ID": start}
    async with client.stream("GET", "/v1/changes", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id = None
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: ") and event_id is not None:
                yield event_id, json.loads(line[6:])["summary"]["tag"]


async def _follow_stream(
    client: httpx.AsyncClient, done: asyncio.Event, expected: list[int]
) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    async def read() -> None:
        async for event in _sse_events(client, "0-0"):
            seen.append(event)

    reading = asyncio.ensure_future(read())
    try:
        await wait_for(lambda: done.is_set() and len(seen) >= expected[0], 120, "the stream")
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
    return seen


async def test_followers_on_two_replicas_see_every_commit_once_in_order(
    live_app: LiveApp, sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    rng = random.Random(12)
    writers = 40
    async with live_app() as (_, replica_a), live_app() as (_, replica_b):
        done = asyncio.Event()
        expected = [10**9]  # set once the writers are done
        pages = asyncio.ensure_future(_follow_pages([replica_a, replica_b], done, expected))
        stream = asyncio.ensure_future(_follow_stream(replica_b, done, expected))
        commits: list[int] = []
        rounds: list[list[int]] = []
        for _round in range(3):
            before = len(commits)
            await asyncio.gather(
                *(_writer(sessions, i, writers, rng, commits) for i in range(writers))
            )
            rounds.append(commits[before:])
        committed = [
            r.tag
            for r in await rows(
                engine, "SELECT summary->>'tag' AS tag FROM changes ORDER BY xid, id"
            )
        ]
        expected[0] = len(committed)
        done.set()
        await wait_for(lambda: pages.done() and stream.done(), 60, "followers to catch up")
        for seen in (pages.result(), stream.result()):
            cursors = [position(c) for c, _ in seen]
            assert cursors == sorted(set(cursors))  # strictly increasing: no repeat
            assert [tag for _, tag in seen] == committed  # none missed, rolled back absent
        assert len(committed) > writers  # the rounds did commit a good number
        # and out of insert order (writers insert in index order): in every round, a writer
        # that inserted earlier committed after one that inserted later.
        assert all(done_order != sorted(done_order) for done_order in rounds)
    rolled_back = await rows(engine, "SELECT 1 FROM changes WHERE summary->>'tag' LIKE 'w4-%'")
    assert rolled_back == []
