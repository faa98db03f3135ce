"""Group commit: many concurrent callers' writes in one transaction.

Each webhook delivery used to be its own transaction: one round trip, one statement, one
commit (a WAL flush) per event, and under load most of the time on both sides went to
that per-statement overhead (docs/decisions.md, "Group commit"). Here a caller runs its
write at once when one of a few *lanes* is free; when every lane is busy it queues, and
the next lane to come free takes the queue (up to `max_batch` callers) and writes them
all in one transaction: one statement for as many of them as it can hold (a statement
holds no two items sharing a key), several pipelined when it cannot (asyncpg's
`fetchmany`: one Sync, so all or none commit). A caller gets its own result only after
the commit that holds its write, so "committed before the answer" holds per caller, and
under low load nobody waits for anybody.

- If the transaction fails (a constraint, a bug, a deadlock), it rolled back as a whole,
  and each caller writes again alone: only the bad one fails, as without batching.
- If PostgreSQL is unreachable, or the caller running the batch is interrupted (its
  deadline passed), every caller in it gets the error: the outcome is unknown, and a 503
  lets Leap deliver again (a stored event is then a duplicate, answered 200).
- A caller interrupted while it waits is dropped from the queue; one whose write is
  already running leaves it to finish (its event may be stored: Leap's retry is then a
  duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any, Final, Protocol

import asyncpg

from app.db import RawPool, is_unavailable


class BatchStatement(Protocol):
    """A statement that writes a list of items: its parameters for a list, and per item
    the keys that no two items of one statement may share. It answers one row whose
    first column holds one value per item, in order."""

    @property
    def sql(self) -> str: ...

    def args(self, items: Sequence[Any]) -> list[Any]: ...

    def keys(self, item: Any) -> tuple[Hashable, ...]: ...


# A caller's future gets one of these instead of a value.
_LEAD: Final = object()  # run the batch `call.batch` (you are its first member)
_ALONE: Final = object()  # the batch failed on some write: write yours again, alone


class _Call:
    __slots__ = ("batch", "future", "item")

    def __init__(self, item: Any, future: asyncio.Future[Any]) -> None:
        self.item = item
        self.future = future
        self.batch: list[_Call] = []


class GroupCommit:
    """Write items with `statement` for concurrent callers, batched when busy."""

    def __init__(
        self, pool: RawPool, statement: BatchStatement, *, lanes: int = 2, max_batch: int = 64
    ) -> None:
        self._pool = pool
        self._statement = statement
        self._free_lanes = lanes
        self._max_batch = max_batch
        self._queue: deque[_Call] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def fetchval(self, item: Any) -> Any:
        """The statement's value for `item`, once the transaction holding it committed.
        No timer of its own: the caller bounds the call (the receiver's deadline)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        call = _Call(item, loop.create_future())
        if self._free_lanes > 0:
            self._free_lanes -= 1
            call.batch = [call]
            return await self._lead(call)
        self._queue.append(call)
        try:
            outcome = await call.future
        except BaseException:
            self._abandon(call)
            raise
        if outcome is _LEAD:
            return await self._lead(call)
        if outcome is _ALONE:
            return await self._alone(item)
        return outcome

    async def _alone(self, item: Any) -> Any:
        values = await self._pool.bounded_fetchval(
            self._statement.sql, *self._statement.args([item])
        )
        return values[0]

    async def _lead(self, call: _Call) -> Any:
        batch = call.batch
        if len(batch) == 1:
            return (await self._run(batch))[0]
        try:
            values = await self._run(batch)
        except asyncpg.PostgresError as exc:
            if is_unavailable(exc):
                _fail(batch, call, exc)
                raise
            _settle(batch, call, [_ALONE] * len(batch))
            return await self._alone(call.item)
        except BaseException as exc:
            _fail(batch, call, exc)
            raise
        _settle(batch, call, values)
        return values[batch.index(call)]

    async def _run(self, batch: list[_Call]) -> list[Any]:
        """Each call's value, in batch order, from one transaction."""
        statement = self._statement
        try:
            statements = _split(batch, statement)
            if len(statements) == 1:
                return list(
                    await self._pool.bounded_fetchval(
                        statement.sql, *statement.args([c.item for c in batch])
                    )
                )
            rows = await self._pool.bounded_fetchmany(
                statement.sql, [statement.args([c.item for c in part]) for part in statements]
            )
            value_of = {
                id(c): value
                for part, row in zip(statements, rows, strict=True)
                for c, value in zip(part, row[0], strict=True)
            }
            return [value_of[id(c)] for c in batch]
        finally:
            # The lane goes to the next batch before anyone of this one is answered: the
            # next leader's wake-up is queued ahead of theirs, so PostgreSQL works on the
            # next batch while this one's answers are written.
            self._next()

    def _next(self) -> None:
        """A lane came free: hand it, with a batch from the queue, to the first caller
        still waiting; or leave it free."""
        queue = self._queue
        while queue:
            head = queue.popleft()
            if head.future.done():  # interrupted while queued
                continue
            batch = [head]
            while queue and len(batch) < self._max_batch:
                member = queue.popleft()
                if not member.future.done():
                    batch.append(member)
            head.batch = batch
            head.future.set_result(_LEAD)
            return
        self._free_lanes += 1

    def _abandon(self, call: _Call) -> None:
        """`call` was interrupted while it waited."""
        future = call.future
        if not future.done() or future.cancelled():
            # Not queued any more when its batch is running under another caller: that
            # one finishes it.
            with contextlib.suppress(ValueError):
                self._queue.remove(call)
            return
        if future.exception() is None and future.result() is _LEAD:
            # Chosen to lead just as it gave up: the rest of its batch needs a leader.
            rest = [m for m in call.batch if m is not call and not m.future.done()]
            if rest:
                rest[0].batch = rest
                rest[0].future.set_result(_LEAD)
            else:
                self._next()


def _split(batch: list[_Call], statement: BatchStatement) -> list[list[_Call]]:
    """The batch as statements holding no two calls with a key in common, in arrival
    order within each (a later call with a taken key goes to a later statement)."""
    parts: list[list[_Call]] = []
    taken: list[set[Hashable]] = []
    for call in batch:
        keys = statement.keys(call.item)
        free = (i for i, used in enumerate(taken) if not any(key in used for key in keys))
        index = next(free, len(parts))
        if index == len(parts):
            parts.append([])
            taken.append(set())
        parts[index].append(call)
        taken[index].update(keys)
    return parts


def _settle(batch: list[_Call], leader: _Call, values: Sequence[Any]) -> None:
    for member, value in zip(batch, values, strict=True):
        if member is not leader and not member.future.done():
            member.future.set_result(value)


def _fail(batch: list[_Call], leader: _Call, exc: BaseException) -> None:
    if isinstance(exc, asyncpg.PostgresError | OSError | TimeoutError):
        shared: BaseException = exc
    else:  # the leader was cancelled or broke: the batch's outcome is unknown
        shared = ConnectionError(f"the batch holding this write was interrupted ({exc!r})")
    for member in batch:
        if member is not leader and not member.future.done():
            member.future.set_exception(shared)
