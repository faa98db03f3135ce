"""Shared FastAPI dependency aliases: the unit of work and the settings.

`SessionDep` owns the request's transaction: it commits when the endpoint returns and
rolls back when it raises. Services and repositories only `flush`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.outage import outage


def _settings(request: Request) -> Settings:
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
