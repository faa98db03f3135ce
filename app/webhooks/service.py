"""Receiving a Leap delivery: decode, check, store and apply in one transaction.

This is the one place that manages its own transactions instead of using the request's
unit of work: an apply failure must roll back the effects yet still store the event
(as failed) before answering, which takes a second transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import is_unavailable
from app.groups.service import apply_group_updated
from app.meters.service import apply_event as apply_meter_event
from app.partners.service import apply_connect_event
from app.webhooks import parsing, repository
from app.webhooks.schemas import (
    EVENT_ADAPTER,
    KNOWN_EVENT_TYPES,
    AuthorizationUpdated,
    ConnectSessionUpdated,
    GroupUpdated,
    LeapEvent,
    read_envelope,
    utc_now,
)

log = logging.getLogger("meter_sync.webhooks")

# Leap waits 10 s; answering 503 within 5 s leaves room for the network.
STORE_DEADLINE_S = 4.5
FIRST_RETRY_DELAY = timedelta(seconds=30)

Outcome = Literal["accepted", "duplicate", "ignored", "failed"]


class Rejected(Exception):
    """The delivery is refused with a 4xx; nothing (or only a dead letter) was stored."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


class Unavailable(Exception):
    """PostgreSQL could not be reached in time: answer 503 so Leap retries."""


@dataclass(slots=True)
class Receipt:
    webhook_event_id: uuid.UUID
    event_type: str
    outcome: Outcome
    conflicting: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (it may be huge or hostile)."""
    return [
        {"loc": ["payload", *[str(p) for p in err["loc"]]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _subject(event: LeapEvent) -> tuple[uuid.UUID | None, str | None]:
    meter_id = getattr(event, "meter_id", None)
    return meter_id, getattr(event, "partner_reference", None)


async def apply(
    session: AsyncSession, event: LeapEvent, event_id: uuid.UUID, *, refresh: bool
) -> None:
    """Apply one event's effects (flush only; the caller commits)."""
    if isinstance(event, GroupUpdated):
        await apply_group_updated(session, event)
    elif isinstance(event, ConnectSessionUpdated | AuthorizationUpdated):
        await apply_connect_event(session, event, event_id)
    else:
        await apply_meter_event(session, event, event_id, refresh=refresh)


async def receive(
    sessions: async_sessionmaker[AsyncSession], raw: bytes, *, refresh: bool
) -> Receipt:
    try:
        body = parsing.decode(raw)
    except parsing.BadBody as exc:
        raise Rejected(400, str(exc)) from None
    try:
        envelope = read_envelope(body)
    except ValueError as exc:
        raise Rejected(422, str(exc)) from None
    event_id, event_type = envelope.webhook_event_id, envelope.event_type
    sha = hashlib.sha256(raw).digest()
    try:
        async with asyncio.timeout(STORE_DEADLINE_S):
            if event_type not in KNOWN_EVENT_TYPES:
                return await _store_only(sessions, event_id, event_type, "ignored", raw, sha)
            try:
                event = EVENT_ADAPTER.validate_python(envelope.payload)
            except ValidationError as exc:
                errors = field_errors(exc)
                await _store_only(
                    sessions, event_id, event_type, "dead", raw, sha, error=_error_text(errors)
                )
                raise Rejected(422, "payload does not match Leap's schema", errors) from None
            return await _store_and_apply(sessions, event, event_id, event_type, raw, sha, refresh)
    except (Rejected, Unavailable):
        raise
    except Exception as exc:
        if isinstance(exc, TimeoutError) or is_unavailable(exc):
            raise Unavailable(str(exc) or type(exc).__name__) from exc
        raise


def _error_text(errors: list[dict[str, Any]]) -> str:
    return storable_text("; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors))


async def _store_only(
    sessions: async_sessionmaker[AsyncSession],
    event_id: uuid.UUID,
    event_type: str,
    status: str,
    raw: bytes,
    sha: bytes,
    error: str | None = None,
) -> Receipt:
    async with sessions() as session, session.begin():
        stored = await repository.insert(
            session,
            event_id=event_id,
            event_type=event_type,
            status=status,
            body=raw,
            sha=sha,
            error=error,
        )
        if stored:
            return Receipt(event_id, event_type, "ignored" if status == "ignored" else "failed")
        conflicting = await repository.note_redelivery(session, event_id, sha)
        return Receipt(event_id, event_type, "duplicate", conflicting)


async def _store_and_apply(
    sessions: async_sessionmaker[AsyncSession],
    event: LeapEvent,
    event_id: uuid.UUID,
    event_type: str,
    raw: bytes,
    sha: bytes,
    refresh: bool,
) -> Receipt:
    meter_id, partner_reference = _subject(event)
    async with sessions() as session:
        try:
            stored = await repository.insert(
                session,
                event_id=event_id,
                event_type=event_type,
                status="applied",
                body=raw,
                sha=sha,
                meter_id=meter_id,
                partner_reference=partner_reference,
            )
            if not stored:
                conflicting = await repository.note_redelivery(session, event_id, sha)
                await session.commit()
                return Receipt(event_id, event_type, "duplicate", conflicting)
            await apply(session, event, event_id, refresh=refresh)
            await session.commit()
            return Receipt(event_id, event_type, "accepted")
        except Exception as exc:
            await session.rollback()
            if is_unavailable(exc) or isinstance(exc, TimeoutError):
                raise
            failure = exc
        # The effects are gone; the event itself must still be kept, marked failed.
        log.warning(
            "webhook apply failed",
            extra={"webhook_event_id": str(event_id), "error": type(failure).__name__},
        )
        await repository.insert(
            session,
            event_id=event_id,
            event_type=event_type,
            status="failed",
            body=raw,
            sha=sha,
            error=storable_text(f"{type(failure).__name__}: {failure}"),
            meter_id=meter_id,
            partner_reference=partner_reference,
            next_attempt_at=utc_now() + FIRST_RETRY_DELAY,
        )
        await session.commit()
        return Receipt(event_id, event_type, "failed")


def storable_text(value: str, limit: int = 4000) -> str:
    """Text safe for a PostgreSQL text column: no NUL, valid UTF-8, bounded."""
    cleaned = value.replace("\x00", "\\0")[:limit]
    return cleaned.encode("utf-8", "replace").decode("utf-8")
