"""PostgreSQL advisory locks: who may do a thing that only one process should do at a time.

Session locks live as long as the connection that took them (leadership: if the process
dies, its connection closes and another worker takes over). Transaction locks end with
the transaction (one retention batch, one group's update).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# Fixed ids ("meters" in ASCII, then a number) for the process-wide roles.
LEADER = 0x6D657465_72730001
RETENTION = 0x6D657465_72730002
DISPATCH_POLL = 0x6D657465_72730003
CHANGE_RETENTION = 0x6D657465_72730004
MEMBERSHIP_CONFIRM = 0x6D657465_72730005


async def try_session_lock(conn: AsyncConnection, lock_id: int) -> bool:
    """Take `lock_id` on `conn` until it closes, if it is free (commits the probe)."""
    result = await conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": lock_id})
    await conn.commit()
    return bool(result.scalar_one())


async def try_transaction_lock(session: AsyncSession, lock_id: int) -> bool:
    """Take `lock_id` until the session's transaction ends, if it is free."""
    result = await session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": lock_id})
    return bool(result.scalar_one())


async def transaction_lock_on(session: AsyncSession, key: str) -> None:
    """Wait for the lock named by `key` (hashed), held until the transaction ends."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
    )


async def unlock_session(conn: AsyncConnection, lock_id: int) -> None:
    """Release a lock taken with `try_session_lock` on `conn` (commits)."""
    await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
    await conn.commit()
