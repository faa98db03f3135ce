"""Body retention: event bodies older than EVENT_RETENTION_DAYS are dropped.

The id row stays, so a late redelivery is still a duplicate. One worker at a time prunes
(a transaction-level advisory lock), in batches along the inbox's `seq` order.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import locks
from app.clock import utc_now
from app.webhooks import repository

log = logging.getLogger("meter_sync.worker")

BATCH = 1000
IDLE_S = 600.0


class BodyRetention:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], days: int) -> None:
        self.sessions = sessions
        self.days = days
        self._after_seq = 0
        self._pruned_in_pass = 0

    async def prune_batch(self) -> int:
        """One batch; nonzero while there is more to do right away."""
        cutoff = utc_now() - timedelta(days=self.days)
        async with self.sessions() as session:
            if not await locks.try_transaction_lock(session, locks.RETENTION):
                return 0  # another worker is pruning
            row = await repository.prune_bodies(
                session, cutoff=cutoff, after_seq=self._after_seq, batch=BATCH
            )
            await session.commit()
        if row.last_seq is not None:
            self._after_seq = row.last_seq
        self._pruned_in_pass += row.pruned
        if row.scanned >= BATCH and not row.reached_new:
            return int(row.scanned)
        if self._pruned_in_pass:
            log.info(
                "pruned webhook event bodies",
                extra={"events": self._pruned_in_pass, "older_than": cutoff.isoformat()},
            )
            self._pruned_in_pass = 0
        return 0
