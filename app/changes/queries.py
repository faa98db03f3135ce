"""Reading the change feed: pages, long polls and the event stream.

Each read uses its own short session (not the request's unit of work): a long poll or a
stream may last minutes and must not hold a pooled connection while it waits.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.changes import repository
from app.changes.repository import ChangeType, Position
from app.changes.schemas import ChangeOut, ChangePage
from app.changes.signal import ChangeSignal
from app.problems import Problem

MAX_WAIT_S = 30.0
MAX_LIMIT = 1000
STREAM_PAGE = 500
# Without a notification, look anyway this often (a lost notification, no listener).
FALLBACK_POLL_S = 1.0
# A change committed but held behind a transaction still running: look again soon.
HELD_BACK_FIRST_S = 0.005
HELD_BACK_MAX_S = 0.02
KEEPALIVE_S = 15.0

_CURSOR = re.compile(r"^(\d{1,19})-(\d{1,19})$")
_MAX = 2**63 - 1
TYPES = frozenset(ChangeType)

Sessions = async_sessionmaker[AsyncSession]


def parse_cursor(value: str) -> Position:
    """`XID-ID` (both decimal), the only cursor shape; anything else is a 422."""
    match = _CURSOR.match(value)
    if match is None or int(match[1]) > _MAX or int(match[2]) > _MAX:
        raise Problem(422, "malformed cursor: pass back a cursor the feed gave")
    return int(match[1]), int(match[2])


def format_cursor(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def parse_types(value: str | None) -> list[str] | None:
    if value is None:
        return None
    types = [t.strip() for t in value.split(",") if t.strip()]
    unknown = sorted(set(types) - TYPES)
    if unknown or not types:
        raise Problem(422, f"unknown change type(s): {', '.join(unknown) or '(none)'}")
    return types


def _change(row: Row[Any]) -> ChangeOut:
    return ChangeOut(
        cursor=format_cursor((int(row.xid), row.id)),
        type=row.type,
        at=row.at,
        meter_id=row.meter_id,
        partner_reference=row.partner_reference,
        market_group_id=row.market_group_id,
        dispatch_event_id=row.dispatch_event_id,
        summary=row.summary,
    )


class Gone(Exception):
    def __init__(self, oldest: Position) -> None:
        super().__init__(format_cursor(oldest))
        self.oldest = oldest


def gone_problem(exc: Gone) -> Problem:
    return Problem(
        410,
        "cursor older than the changes kept: resume from oldest_cursor",
        oldest_cursor=format_cursor(exc.oldest),
    )


async def _read(
    sessions: Sessions, after: Position, limit: int, types: Sequence[str] | None
) -> tuple[list[Row[Any]], bool]:
    """(rows after `after`, held back?) — Gone if retention passed `after`. The mark is
    read after the page: if it has not passed `after` then, the page lost nothing."""
    async with sessions() as session:
        rows = await repository.page(session, after, limit, types)
        held = not rows and await repository.held_back(session, after, types)
        mark = await repository.pruned_through(session)
    if mark > after:
        raise Gone(mark)
    return rows, held


async def start_position(sessions: Sessions, after: str | None) -> Position:
    if after is not None:
        return parse_cursor(after)
    async with sessions() as session:
        return await repository.pruned_through(session)


async def read_page(
    sessions: Sessions,
    signal: ChangeSignal,
    *,
    after: str | None,
    limit: int,
    types: Sequence[str] | None,
    wait_s: float,
) -> ChangePage:
    """One page in feed order; with `wait_s`, waits that long for a first change."""
    position = await start_position(sessions, after)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    pause = HELD_BACK_FIRST_S
    try:
        while True:
            seen = signal.generation()
            rows, held = await _read(sessions, position, limit, types)
            remaining = deadline - loop.time()
            if rows or remaining <= 0:
                break
            if held:
                await asyncio.sleep(min(pause, remaining))
                pause = min(pause * 2, HELD_BACK_MAX_S)
            else:
                await signal.wait(seen, min(remaining, FALLBACK_POLL_S))
                pause = HELD_BACK_FIRST_S
    except Gone as exc:
        raise gone_problem(exc) from None
    items = [_change(row) for row in rows]
    return ChangePage(
        items=items, next_cursor=items[-1].cursor if items else format_cursor(position)
    )


async def stream_start(
    sessions: Sessions, last_event_id: str | None, after: str | None
) -> Position:
    """After `Last-Event-ID`, else after `after`, else at the end (new changes only)."""
    given = last_event_id or after
    if given is not None:
        position = parse_cursor(given)
        async with sessions() as session:
            mark = await repository.pruned_through(session)
        if mark > position:
            raise gone_problem(Gone(mark))
        return position
    async with sessions() as session:
        return await repository.end(session)


def sse(change: ChangeOut) -> str:
    data = json.dumps(change.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {change.cursor}\nevent: {change.type}\ndata: {data}\n\n"


async def stream(
    sessions: Sessions, signal: ChangeSignal, position: Position, types: Sequence[str] | None
) -> AsyncIterator[str]:
    """Server-Sent Events from `position` on, until the client leaves. A comment line
    every KEEPALIVE_S keeps proxies from closing a quiet stream."""
    yield ": change feed\n\n"
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    pause = HELD_BACK_FIRST_S
    while True:
        seen = signal.generation()
        try:
            rows, held = await _read(sessions, position, STREAM_PAGE, types)
        except Gone as exc:
            oldest = json.dumps({"oldest_cursor": format_cursor(exc.oldest)})
            yield f"event: gone\ndata: {oldest}\n\n"
            return
        for row in rows:
            change = _change(row)
            yield sse(change)
            position = (int(row.xid), row.id)
        if rows:
            pause, quiet_since = HELD_BACK_FIRST_S, loop.time()
            continue
        if held:
            await asyncio.sleep(pause)
            pause = min(pause * 2, HELD_BACK_MAX_S)
        else:
            await signal.wait(seen, FALLBACK_POLL_S)
        if loop.time() - quiet_since >= KEEPALIVE_S:
            quiet_since = loop.time()
            yield ": keep-alive\n\n"
