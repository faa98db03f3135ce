"""Change retention: changes older than CHANGE_RETENTION_DAYS leave the feed.

One worker at a time (a transaction-level advisory lock), in batches from the feed's
start; each batch moves the mark below which a cursor answers 410.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import locks
from app.changes import repository
from app.clock import utc_now

log = logging.getLogger("meter_sync.worker")

BATCH = 5000
IDLE_S = 300.0


class ChangeRetention:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], days: int) -> None:
        self.sessions = sessions
        self.days = days

    async def prune_changes(self) -> int:
        """One batch; nonzero while there is more to do right away."""
        cutoff = utc_now() - timedelta(days=self.days)
        async with self.sessions() as session:
            if not await locks.try_transaction_lock(session, locks.CHANGE_RETENTION):
                return 0  # another worker is pruning
            deleted = await repository.prune(session, cutoff, BATCH)
            await session.commit()
        if deleted:
            log.info("pruned changes", extra={"changes": deleted, "older_than": cutoff.isoformat()})
        return deleted if deleted >= BATCH else 0
