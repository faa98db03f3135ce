"""Engine, sessions, the raw asyncpg pool, and what counts as "database unavailable".

The request-scoped unit of work (`SessionDep`) is in app/deps.py: this layer does not
know about FastAPI.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
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


async def _keep_session(_: asyncpg.Connection) -> None:
    """Pool connections are returned as they are: the hot path sets no session state
    (no LISTEN, advisory locks or SET), so asyncpg's reset would be a wasted round trip."""


async def create_raw_pool(url: str, size: int = RAW_POOL_SIZE) -> asyncpg.Pool:
    # min_size=0: the service starts (and answers 503) while PostgreSQL is down.
    return await asyncpg.create_pool(
        plain_dsn(url),
        reset=_keep_session,
        min_size=0,
        max_size=size,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=60,
        server_settings=SERVER_SETTINGS,
    )


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
