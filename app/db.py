"""Engine, sessions and the request-scoped unit of work.

The session dependency owns the transaction: it commits when the endpoint returns and
rolls back when it raises. Services and repositories only `flush`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import MetaData
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

CONNECT_TIMEOUT_S = 2.0
POOL_TIMEOUT_S = 2.5


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An asyncpg engine whose failures surface fast enough to answer 503 within 5 s."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=10,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=False,
        json_serializer=_dumps,
        connect_args={
            "timeout": CONNECT_TIMEOUT_S,
            "command_timeout": 60,
            "server_settings": {"application_name": "meter-sync"},
        },
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def is_unavailable(exc: BaseException) -> bool:
    """True when an error means PostgreSQL cannot be reached (answer 503, not 500)."""
    if isinstance(exc, PoolTimeout | OSError | TimeoutError | InterfaceError):
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


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The unit of work for one request: commit on success, roll back on error."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function" makes the commit happen before the response is sent, never after.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
