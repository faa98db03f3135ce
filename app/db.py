"""Engine, sessions, the raw asyncpg pool, and what counts as "database unavailable".

The request-scoped unit of work (`SessionDep`) is in app/deps.py: this layer does not
know about FastAPI.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import MetaData, TextClause
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Stable constraint names, so Alembic migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Shown in pg_stat_activity: which process holds a connection (and the leader's lock).
APPLICATION_NAME = f"meter-sync {socket.gethostname()}:{os.getpid()}"[:63]
# JIT compiles a plan in ~100 ms before running it: a loss for every query this service
# makes (lookups, pages, rosters), and it kicked in on the 100k roster.
SERVER_SETTINGS = {"application_name": APPLICATION_NAME, "jit": "off"}
CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 60
POOL_TIMEOUT_S = 2.5


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An asyncpg engine whose failures surface fast enough to answer 503 within 5 s.

    No overflow: connections beyond the pool would be opened and closed per request under
    load (measured: a third of the receiver's CPU). Requests queue for a pooled connection
    instead, up to POOL_TIMEOUT_S, then answer 503.
    """
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=False,
        json_serializer=_dumps,
        connect_args={
            "timeout": CONNECT_TIMEOUT_S,
            "command_timeout": 60,
            "server_settings": SERVER_SETTINGS,
        },
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


RAW_POOL_SIZE = 16


@dataclass(frozen=True, slots=True)
class RawStatement:
    """A SQLAlchemy text statement compiled once for asyncpg's positional parameters.

    The webhook hot path runs a few fixed statements straight on an asyncpg pool: going
    through SQLAlchemy's connection and execution layers cost about a third of the
    receiver's CPU (see docs/benchmarks.md). The SQL itself stays written once.
    """

    sql: str
    names: tuple[str, ...]

    @classmethod
    def compile(cls, clause: TextClause) -> RawStatement:
        compiled = clause.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        return cls(str(compiled), tuple(compiled.positiontup or ()))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


def plain_dsn(url: str) -> str:
    """`postgresql+asyncpg://...` as asyncpg itself wants it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class RawPool:
    """A few plain asyncpg connections for the hot path's one-statement writes.

    asyncpg's own pool costs more per use than the statement's Python side: a timeout
    context per acquire, and per release a shielded task and a reset under another
    timeout (about a tenth of the receiver's CPU, docs/decisions.md). This one hands an
    idle connection out (last in, first out) or opens one, up to `size`; beyond that a
    caller waits up to POOL_TIMEOUT_S for one to come back (TimeoutError: a 503, as
    before). Nothing sets session state on these connections, so none needs a reset; a
    connection whose statement was interrupted or lost is closed, never reused.
    """

    def __init__(self, dsn: str, size: int = RAW_POOL_SIZE) -> None:
        self._dsn = dsn
        self._size = size
        self._open = 0
        self._idle: list[asyncpg.Connection] = []
        # Each waiter gets a connection, or None: "a slot is free, open one yourself".
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchval", sql, args, COMMAND_TIMEOUT_S)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchrow", sql, args, COMMAND_TIMEOUT_S)

    async def fetch(self, sql: str, *args: Any) -> Any:
        return await self._run("fetch", sql, args, COMMAND_TIMEOUT_S)

    async def bounded_fetchval(self, sql: str, *args: Any) -> Any:
        """`fetchval` without a statement timer, for a caller that bounds the whole call
        itself (the receiver's deadline): one timer less per delivery."""
        return await self._run("fetchval", sql, args, None)

    async def bounded_fetchmany(self, sql: str, args: list[Sequence[Any]]) -> list[Any]:
        """`sql` once per argument tuple, pipelined in one transaction (all or none
        commit), without a statement timer (app.group_commit)."""
        rows: list[Any] = await self._run("fetchmany", sql, (args,), None)
        return rows

    async def _run(
        self, method: str, sql: str, args: tuple[Any, ...], limit_s: float | None
    ) -> Any:
        conn = await self._acquire()
        try:
            value = await getattr(conn, method)(sql, *args, timeout=limit_s)
        except asyncpg.PostgresError:
            self._release(conn)  # the statement failed; the connection is fine (or closed)
            raise
        except BaseException:
            self._discard(conn)  # cancelled mid-statement, or the connection broke
            raise
        self._release(conn)
        return value

    async def _acquire(self) -> asyncpg.Connection:
        if self._closing:
            raise asyncpg.exceptions.InterfaceError("the raw pool is closing")
        if self._idle:
            return self._idle.pop()
        if self._open >= self._size:
            # The loop is looked up once: on Python 3.11 each lookup is a getpid call.
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            waiter: asyncio.Future[asyncpg.Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(POOL_TIMEOUT_S, _give_up, waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Handed over just as this caller gave up: pass it on.
                    given = waiter.result()
                    if given is not None:
                        self._release(given)
                    else:
                        self._free_slot()
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
            finally:
                timer.cancel()
            if handed is not None:
                return handed
        else:
            self._open += 1
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                self._dsn, timeout=CONNECT_TIMEOUT_S, server_settings=SERVER_SETTINGS
            )
        except BaseException:
            self._free_slot()
            raise
        return conn

    def _release(self, conn: asyncpg.Connection) -> None:
        if conn.is_closed() or self._closing:
            self._discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _discard(self, conn: asyncpg.Connection) -> None:
        if not conn.is_closed():
            conn.terminate()
        self._free_slot()

    def _free_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the waiter opens a connection in this slot
                return
        self._open -= 1

    async def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        self._closing = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            await conn.close(timeout=CONNECT_TIMEOUT_S)


def _give_up(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"no database connection free in {POOL_TIMEOUT_S} s"))


async def create_raw_pool(url: str, size: int = RAW_POOL_SIZE) -> RawPool:
    # No connection is opened yet: the service starts (and answers 503) while
    # PostgreSQL is down.
    return RawPool(plain_dsn(url), size)


MIGRATE_HINT = "run `meter-sync migrate`"

# The schema is missing or older than this build: the service cannot work until ops
# migrate, the same as when PostgreSQL is down (503, not 500).
_SCHEMA_MISSING = (
    asyncpg.exceptions.UndefinedTableError,
    asyncpg.exceptions.UndefinedColumnError,
)


def _causes(exc: BaseException) -> list[BaseException]:
    """The error, what SQLAlchemy wraps (`orig`) and its causes, outermost first."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        one = todo.pop(0)
        if one is None or any(one is s for s in seen) or len(seen) > 10:
            continue
        seen.append(one)
        orig = getattr(one, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, one.__cause__]
    return seen


def is_unmigrated(exc: BaseException) -> bool:
    """True when a statement failed because a table or column of the schema is missing."""
    return any(isinstance(e, _SCHEMA_MISSING) for e in _causes(exc))


def describe_database_error(exc: BaseException) -> str | None:
    """One line saying what is wrong with the database and what to do, or None when
    `exc` is not about reaching or using the database."""
    causes = _causes(exc)
    if is_unmigrated(exc):
        return f"the database schema is missing or older than this build: {MIGRATE_HINT}"
    if any(isinstance(e, asyncpg.exceptions.InvalidCatalogNameError) for e in causes):
        return (
            "the database named in DATABASE_URL does not exist: create it (createdb NAME), "
            f"then {MIGRATE_HINT}"
        )
    if any(
        isinstance(
            e,
            asyncpg.exceptions.InvalidPasswordError
            | asyncpg.exceptions.InvalidAuthorizationSpecificationError,
        )
        for e in causes
    ):
        return "PostgreSQL refused the login: check the user and password in DATABASE_URL"
    if is_unavailable(exc) or isinstance(exc, TimeoutError):
        reason = _one_line(str(causes[-1]) or type(causes[-1]).__name__)
        return f"PostgreSQL is unreachable ({reason}): start it, or correct DATABASE_URL"
    return None


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def is_unavailable(exc: BaseException) -> bool:
    """True when an error means PostgreSQL cannot be reached or its schema is missing
    (answer 503, not 500)."""
    if is_unmigrated(exc):
        return True
    if isinstance(exc, PoolTimeout | OSError | TimeoutError | InterfaceError):
        return True
    if isinstance(
        exc,
        asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.InterfaceError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.AdminShutdownError
        | asyncpg.exceptions.TooManyConnectionsError,
    ):
        return True
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        cause = getattr(orig, "__cause__", None)
        return isinstance(
            cause,
            asyncpg.exceptions.CannotConnectNowError
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.AdminShutdownError
            | asyncpg.exceptions.TooManyConnectionsError
            | OSError,
        ) or bool(exc.connection_invalidated)
    return False
