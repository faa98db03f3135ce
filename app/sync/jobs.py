"""The durable job queue in PostgreSQL (this module only enqueues; the worker claims).

Jobs are written in the same transaction as the change that needs them, so a job exists
if and only if its cause was committed. A second enqueue for a meter that already has a
queued job of the same kind is a no-op: refreshes coalesce per meter.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

REFRESH_METER = "refresh_meter"

_ENQUEUE = text(
    """
    INSERT INTO jobs (kind, meter_id, payload)
    VALUES (:kind, :meter_id, CAST(:payload AS jsonb))
    ON CONFLICT (kind, meter_id) WHERE status = 'queued' DO NOTHING
    """
)


async def enqueue(
    session: AsyncSession,
    kind: str,
    meter_id: uuid.UUID | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    await session.execute(
        _ENQUEUE,
        {"kind": kind, "meter_id": meter_id, "payload": json.dumps(payload or {})},
    )
