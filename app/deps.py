"""Shared FastAPI dependency aliases: the unit of work, one-statement reads, the settings.

`SessionDep` owns the request's transaction: it commits when the endpoint returns and
rolls back when it raises. Services and repositories only `flush`.

`ReadsDep` is for lookups answered by one SQL statement (docs/decisions.md, "Where the
milliseconds of a lookup went"): the statement runs on the raw asyncpg pool in autocommit
(one statement is its own snapshot), so it costs one round trip instead of BEGIN, the
statement and COMMIT through SQLAlchemy's session.

Every dependency here is `async def`: FastAPI runs a plain `def` dependency in its thread
pool, a thread hop per request that showed in the lookups' p99.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import TextClause
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import RawPool, RawStatement
from app.outage import outage

Params = Mapping[str, Any]


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


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
            used_database = session.in_transaction()
            await session.commit()
            if used_database:
                outage.up()


# scope="function" makes the commit happen before the response is sent, never after.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


class Reads:
    """One read-only statement per lookup on the raw pool (no transaction, no ORM).

    Errors surface as asyncpg's, which app.problems answers as 503 when the database is
    unavailable, like the session's. The CLI's look-ups pass their session's connection
    (`reads_in`), so they show exactly what the API answers."""

    def __init__(self, source: RawPool | asyncpg.Connection) -> None:
        self._pool = source

    async def row(self, statement: RawStatement, params: Params) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._pool.fetchrow(
            statement.sql, *statement.args(params)
        )
        outage.up()
        return row

    async def rows(self, statement: RawStatement, params: Params) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._pool.fetch(statement.sql, *statement.args(params))
        outage.up()
        return rows


async def _reads(request: Request) -> Reads:
    return Reads(request.app.state.raw_pool)


ReadsDep = Annotated[Reads, Depends(_reads)]


async def reads_in(session: AsyncSession) -> Reads:
    """`Reads` on the session's own connection (inside its transaction)."""
    connection = await (await session.connection()).get_raw_connection()
    driver = connection.driver_connection
    if not isinstance(driver, asyncpg.Connection):
        raise TypeError("reads_in needs a session on the asyncpg driver")
    return Reads(driver)


def raw(clause: TextClause) -> RawStatement:
    """A `text()` statement compiled once, at import, for `Reads`."""
    return RawStatement.compile(clause)


def json_answer(model: BaseModel) -> Response:
    """The model as FastAPI would write it for its `response_model` (the same bytes),
    without FastAPI validating the model again before serializing it."""
    return Response(model.__pydantic_serializer__.to_json(model), media_type="application/json")
