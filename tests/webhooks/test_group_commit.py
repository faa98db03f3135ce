"""Group commit (app.group_commit) on a real PostgreSQL: each caller gets its own value
after the commit holding its statement, a failing statement fails only its caller, and
interrupted callers leave nothing hanging. One lane, held busy by a slow first statement,
makes the batches deterministic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Hashable, Sequence
from typing import Any

import asyncpg
import pytest

from app.db import RawPool, create_raw_pool
from app.group_commit import GroupCommit

# A row per item (k, seconds): the statement first sleeps the longest `seconds` of its
# items (so a test can hold the one lane while others queue), then writes each k and
# answers "2k:transaction id" per item, in order. Two items of one key never share a
# statement (k is the table's primary key).
_SQL = """
WITH items AS (
    SELECT * FROM unnest($1::int[], $2::float8[]) WITH ORDINALITY AS i(k, seconds, ord)
), pause AS (SELECT pg_sleep(max(seconds)) FROM items),
written AS (INSERT INTO {table} (k) SELECT k FROM items, pause ORDER BY ord RETURNING k)
SELECT array_agg(format('%s:%s', i.k * 2, txid_current()) ORDER BY i.ord)
FROM items i WHERE (SELECT count(*) FROM written) >= 0
"""


class _Writes:
    def __init__(self, table: str) -> None:
        self.sql = _SQL.format(table=table)

    def args(self, items: Sequence[tuple[int, float]]) -> list[Any]:
        return [[k for k, _ in items], [seconds for _, seconds in items]]

    def keys(self, item: tuple[int, float]) -> tuple[Hashable, ...]:
        return (item[0],)


def _value(answer: str) -> tuple[int, int]:
    doubled, txid = answer.split(":")
    return int(doubled), int(txid)


@pytest.fixture
async def table(database_url: str) -> AsyncIterator[tuple[RawPool, str]]:
    name = f"group_commit_{uuid.uuid4().hex[:12]}"
    pool = await create_raw_pool(database_url, size=4)
    # k < 1000 stands in for "a statement that fails on its data" (a constraint).
    await pool.fetchval(f"CREATE TABLE {name} (k int PRIMARY KEY CHECK (k < 1000))")
    try:
        yield pool, name
    finally:
        await pool.fetchval(f"DROP TABLE {name}")
        await pool.close()


async def _keys(pool: RawPool, table: str) -> list[int]:
    return [row["k"] for row in await pool.fetch(f"SELECT k FROM {table} ORDER BY k")]


async def _hold_lane(writer: GroupCommit, seconds: float = 0.4) -> asyncio.Task[object]:
    """Start a slow first call (key 0) that takes the one lane, and let it start."""
    task = asyncio.create_task(writer.fetchval((0, seconds)))
    await asyncio.sleep(0.1)
    return task


async def test_queued_callers_share_one_transaction_and_each_gets_its_value(
    table: tuple[RawPool, str],
) -> None:
    pool, name = table
    writer = GroupCommit(pool, _Writes(name), lanes=1, max_batch=64)
    first = await _hold_lane(writer)
    # Arrive in a shuffled key order: the batch runs sorted, each still gets its own.
    keys = [5, 3, 9, 1, 7, 2, 8, 4, 6]
    results = [_value(v) for v in await asyncio.gather(*(writer.fetchval((k, 0.0)) for k in keys))]
    await first
    assert [value for value, _ in results] == [k * 2 for k in keys]
    assert len({txid for _, txid in results}) == 1  # one transaction for the queued nine
    assert await _keys(pool, name) == [0, *range(1, 10)]


async def test_batches_respect_their_size_limit(table: tuple[RawPool, str]) -> None:
    pool, name = table
    writer = GroupCommit(pool, _Writes(name), lanes=1, max_batch=4)
    first = await _hold_lane(writer)
    results = [
        _value(v) for v in await asyncio.gather(*(writer.fetchval((k, 0.0)) for k in range(1, 11)))
    ]
    await first
    assert [value for value, _ in results] == [k * 2 for k in range(1, 11)]
    sizes = sorted(
        [sum(1 for _, t in results if t == txid) for txid in {t for _, t in results}],
        reverse=True,
    )
    assert sizes == [4, 4, 2]  # ten queued callers, four at most per transaction


async def test_a_failing_statement_fails_only_its_caller(table: tuple[RawPool, str]) -> None:
    pool, name = table
    writer = GroupCommit(pool, _Writes(name), lanes=1)
    first = await _hold_lane(writer)
    keys = [1, 2, 5000, 3]  # 5000 breaks the CHECK: the batch rolls back, then each alone
    results = await asyncio.gather(
        *(writer.fetchval((k, 0.0)) for k in keys), return_exceptions=True
    )
    await first
    assert isinstance(results[2], asyncpg.CheckViolationError)
    assert [_value(r)[0] for r in results if isinstance(r, str)] == [2, 4, 6]
    assert await _keys(pool, name) == [0, 1, 2, 3]


async def test_a_caller_interrupted_while_queued_writes_nothing(
    table: tuple[RawPool, str],
) -> None:
    pool, name = table
    writer = GroupCommit(pool, _Writes(name), lanes=1)
    first = await _hold_lane(writer)
    gone = asyncio.create_task(writer.fetchval((1, 0.0)))
    stays = asyncio.create_task(writer.fetchval((2, 0.0)))
    await asyncio.sleep(0.05)
    gone.cancel()
    assert _value(await stays)[0] == 4
    with pytest.raises(asyncio.CancelledError):
        await gone
    await first
    assert await _keys(pool, name) == [0, 2]


async def test_an_interrupted_leader_fails_its_batch_and_frees_the_lane(
    table: tuple[RawPool, str],
) -> None:
    pool, name = table
    writer = GroupCommit(pool, _Writes(name), lanes=1)
    first = await _hold_lane(writer, seconds=0.3)
    # The queued pair runs as one batch led by key 1, whose statement sleeps 5 s.
    leader = asyncio.create_task(writer.fetchval((1, 5.0)))
    member = asyncio.create_task(writer.fetchval((2, 0.0)))
    await first
    await asyncio.sleep(0.3)  # the batch is running
    leader.cancel()
    with pytest.raises(ConnectionError, match="interrupted"):
        await asyncio.wait_for(member, 10)
    with pytest.raises(asyncio.CancelledError):
        await leader
    # Its connection was closed (the transaction rolled back) and the lane is free again.
    assert _value(await asyncio.wait_for(writer.fetchval((3, 0.0)), 10))[0] == 6
    assert await _keys(pool, name) == [0, 3]


async def test_a_caller_alone_runs_at_once(table: tuple[RawPool, str]) -> None:
    pool, name = table
    writer = GroupCommit(pool, _Writes(name), lanes=2)
    one, two = [
        _value(v)
        for v in await asyncio.gather(writer.fetchval((1, 0.0)), writer.fetchval((2, 0.0)))
    ]
    assert (one[0], two[0]) == (2, 4)
    assert one[1] != two[1]  # two free lanes: two transactions, nobody waited


class _WritesByResidue(_Writes):
    """Items whose k agree modulo 3 may not share a statement."""

    def keys(self, item: tuple[int, float]) -> tuple[Hashable, ...]:
        return (item[0] % 3,)


async def test_items_sharing_a_key_go_to_separate_statements_of_one_transaction(
    table: tuple[RawPool, str],
) -> None:
    pool, name = table
    writer = GroupCommit(pool, _WritesByResidue(name), lanes=1)
    first = await _hold_lane(writer)
    keys = [1, 4, 2, 7, 5, 3]  # three statements: [1, 2, 3], [4, 5], [7]
    results = [_value(v) for v in await asyncio.gather(*(writer.fetchval((k, 0.0)) for k in keys))]
    await first
    assert [value for value, _ in results] == [k * 2 for k in keys]
    assert len({txid for _, txid in results}) == 1
    assert await _keys(pool, name) == [0, 1, 2, 3, 4, 5, 7]


async def test_a_caller_handed_the_lane_as_it_gives_up_passes_it_on(
    table: tuple[RawPool, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, name = table
    writer = GroupCommit(pool, _Writes(name), lanes=1)
    first = await _hold_lane(writer, seconds=0.3)
    gives_up = asyncio.create_task(writer.fetchval((1, 0.0)))
    waits = asyncio.create_task(writer.fetchval((2, 0.0)))
    await asyncio.sleep(0.05)  # both queued behind the first
    hand_over = writer._next

    def hand_over_then_cancel() -> None:
        hand_over()  # `gives_up` is chosen to lead the batch of both...
        gives_up.cancel()  # ...and is interrupted before it could start it
        monkeypatch.setattr(writer, "_next", hand_over)

    monkeypatch.setattr(writer, "_next", hand_over_then_cancel)
    await first
    assert _value(await asyncio.wait_for(waits, 10))[0] == 4  # it took the batch over
    with pytest.raises(asyncio.CancelledError):
        await gives_up
    assert await _keys(pool, name) == [0, 2]
    # The lane is free again afterwards.
    assert _value(await asyncio.wait_for(writer.fetchval((3, 0.0)), 10))[0] == 6
