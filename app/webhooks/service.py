"""Receiving a Leap delivery: decode, check, store and apply in one transaction.

This is the one place that manages its own transactions instead of using the request's
unit of work: an apply failure must roll back the effects yet still store the event
(as failed) before answering, which takes a second transaction. Meter events, nearly
all of Leap's traffic, are stored and applied by a single statement in autocommit mode
(one round trip, atomic by itself); the other types use a session transaction.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app import logs
from app.clock import utc_now
from app.config import ApiMode, Settings
from app.db import RawPool, is_unavailable
from app.groups.service import apply_group_updated
from app.leap.events import (
    EVENT_ADAPTER,
    KNOWN_EVENT_TYPES,
    AuthorizationUpdated,
    ConnectSessionUpdated,
    GroupUpdated,
    LeapEvent,
)
from app.meters.service import MeterEvent, facts_from
from app.meters.service import apply_event as apply_meter_event
from app.models import WebhookStatus
from app.partners.service import apply_connect_event
from app.webhooks import parsing, repository
from app.webhooks.schemas import read_envelope

log = logging.getLogger("meter_sync.webhooks")

# A safety net under Leap's 10 s wait: the receiver's deadline for storing and applying.
# An unreachable database is detected sooner, by the connect (2 s) and pool (2.5 s)
# timeouts in app.db, which answer 503 within 5 s.
STORE_DEADLINE_S = 8.5


def retry_delay(attempts: int) -> timedelta:
    """When a failed apply is tried again: 30 s, 1 min, 2 min, ... capped at 1 h."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


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


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (it may be huge or hostile)."""
    return [
        {"loc": ["payload", *[str(p) for p in err["loc"]]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


class Inbox:
    """Where deliveries are written: an autocommit view of the engine for one-statement
    writes (sharing its pool), and sessions for multi-statement transactions."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        raw_pool: RawPool,
    ) -> None:
        self.sessions = sessions
        self.raw_pool = raw_pool
        self.meter_events = repository.meter_event_writer(raw_pool)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def autocommit(self) -> AsyncEngine:
        return self._autocommit


# Applies a stored body of another surface again (dispatch notifications): the inbox is
# shared, the effects belong to that surface's domain. Raises ValueError or a pydantic
# ValidationError for a body that can never apply.
Reapplier = Callable[[AsyncSession, bytes, uuid.UUID, "ApplyOptions"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    """How effects are applied: queue refetches (API mode), the market zones, and how
    the stored events of other surfaces are applied again (by event type)."""

    refresh: bool
    zones: Mapping[str, str]
    reappliers: Mapping[str, Reapplier] = field(default_factory=dict)

    @classmethod
    def of(
        cls, settings: Settings, reappliers: Mapping[str, Reapplier] | None = None
    ) -> ApplyOptions:
        return cls(
            refresh=settings.api_mode == ApiMode.API,
            zones=settings.market_timezones,
            reappliers=reappliers or {},
        )


async def apply(
    conn: AsyncSession | AsyncConnection,
    event: LeapEvent,
    event_id: uuid.UUID,
    options: ApplyOptions,
) -> None:
    """Apply one event's effects without committing (the caller owns the transaction)."""
    if isinstance(event, GroupUpdated):
        assert isinstance(conn, AsyncSession)
        await apply_group_updated(conn, event, event_id, options.zones)
    elif isinstance(event, ConnectSessionUpdated | AuthorizationUpdated):
        assert isinstance(conn, AsyncSession)
        await apply_connect_event(conn, event, event_id)
    else:
        await apply_meter_event(conn, event, event_id, refresh=options.refresh)


# What a surface reads from a decoded body: (event id, event type, what to store it with).
Identify = Callable[[Any, bytes], tuple[uuid.UUID, str, Any]]
Store = Callable[["Delivery", Any], Awaitable[Receipt]]


async def deliver(inbox: Inbox, raw: bytes, identify: Identify, store: Store) -> Receipt:
    """A delivery of any Leap surface (events, dispatch): decode it strictly, identify it
    (400 / 422 when it cannot be), then store and apply it (Unavailable when PostgreSQL
    cannot be reached; the receiver bounds the whole with STORE_DEADLINE_S)."""
    try:
        body = parsing.decode(raw)
    except parsing.BadBody as exc:
        raise Rejected(400, str(exc)) from None
    try:
        event_id, event_type, content = identify(body, raw)
    except ValueError as exc:
        raise Rejected(422, str(exc)) from None
    logs.webhook_event_id.set(event_id)
    delivery = Delivery(inbox, event_id, event_type, raw, hashlib.sha256(raw).digest())
    try:
        return await store(delivery, content)
    except (Rejected, Unavailable):
        raise
    except Exception as exc:
        raise_if_unavailable(exc)
        raise


def _envelope(body: Any, _: bytes) -> tuple[uuid.UUID, str, Any]:
    envelope = read_envelope(body)
    return envelope.webhook_event_id, envelope.event_type, envelope.payload


async def receive(inbox: Inbox, raw: bytes, options: ApplyOptions) -> Receipt:
    """A delivery of Leap's event webhooks (POST /webhooks/leap)."""

    async def store(delivery: Delivery, payload: Any) -> Receipt:
        if delivery.event_type not in KNOWN_EVENT_TYPES:
            return await delivery.store_only(WebhookStatus.IGNORED)
        try:
            event = EVENT_ADAPTER.validate_python(payload)
        except ValidationError as exc:
            errors = field_errors(exc)
            await delivery.store_only(WebhookStatus.DEAD, error=error_text(errors))
            raise Rejected(422, "payload does not match Leap's schema", errors) from None
        if isinstance(event, GroupUpdated | ConnectSessionUpdated | AuthorizationUpdated):
            return await delivery.store_and_apply(
                lambda session: apply(session, event, delivery.event_id, options),
                partner_reference=getattr(event, "partner_reference", None),
            )
        return await delivery.store_meter_event(event, options.refresh)

    return await deliver(inbox, raw, _envelope, store)


def raise_if_unavailable(exc: BaseException) -> None:
    """A deadline passed or PostgreSQL could not be reached: Unavailable (503)."""
    if isinstance(exc, TimeoutError) or is_unavailable(exc):
        raise Unavailable(str(exc) or type(exc).__name__) from exc


def error_text(errors: list[dict[str, Any]]) -> str:
    """Field errors as one short line (`payload.meter_id: Input should be a valid UUID`)."""
    return storable_text("; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors))


def storable_text(value: str, limit: int = 4000) -> str:
    """Text safe for a PostgreSQL text column: no NUL, valid UTF-8, bounded."""
    cleaned = value.replace("\x00", "\\0")[:limit]
    return cleaned.encode("utf-8", "replace").decode("utf-8")


def reraise_if_unavailable(exc: Exception) -> None:
    if is_unavailable(exc) or isinstance(exc, TimeoutError):
        raise exc


@dataclass(slots=True)
class Delivery:
    inbox: Inbox
    event_id: uuid.UUID
    event_type: str
    raw: bytes
    sha: bytes

    def _receipt(self, outcome: Outcome, conflicting: bool = False) -> Receipt:
        return Receipt(self.event_id, self.event_type, outcome, conflicting)

    async def duplicate(self, conn: AsyncSession | AsyncConnection) -> Receipt:
        conflicting = await repository.note_redelivery(conn, self.event_id, self.sha)
        return self._receipt("duplicate", conflicting)

    async def store_only(self, status: WebhookStatus, error: str | None = None) -> Receipt:
        async with self.inbox.autocommit().connect() as conn:
            stored = await repository.insert(
                conn,
                event_id=self.event_id,
                event_type=self.event_type,
                status=status,
                body=self.raw,
                sha=self.sha,
                error=error,
            )
            if stored:
                return self._receipt("ignored" if status == WebhookStatus.IGNORED else "failed")
            return await self.duplicate(conn)

    async def store_meter_event(self, event: MeterEvent, refresh: bool) -> Receipt:
        try:
            stored = await repository.store_meter_event(
                self.inbox.meter_events,
                facts_from(event),
                event_id=self.event_id,
                event_type=self.event_type,
                body=self.raw,
                sha=self.sha,
                refresh=refresh,
            )
        except Exception as exc:
            reraise_if_unavailable(exc)
            return await self.store_failed(exc, event.meter_id, event.partner_reference)
        if stored:
            return self._receipt("accepted")
        async with self.inbox.autocommit().connect() as conn:
            return await self.duplicate(conn)

    async def store_and_apply(
        self,
        effects: Callable[[AsyncSession], Awaitable[None]],
        *,
        meter_id: uuid.UUID | None = None,
        partner_reference: str | None = None,
    ) -> Receipt:
        """Store the event and apply `effects` in one transaction; if applying fails, the
        effects are rolled back and the event is still stored, marked failed."""
        async with self.inbox.sessions() as session:
            try:
                stored = await repository.insert(
                    session,
                    event_id=self.event_id,
                    event_type=self.event_type,
                    status=WebhookStatus.APPLIED,
                    body=self.raw,
                    sha=self.sha,
                    meter_id=meter_id,
                    partner_reference=partner_reference,
                )
                if not stored:
                    receipt = await self.duplicate(session)
                    await session.commit()
                    return receipt
                await effects(session)
                await session.commit()
                return self._receipt("accepted")
            except Exception as exc:
                await session.rollback()
                reraise_if_unavailable(exc)
                failure = exc
        return await self.store_failed(failure, meter_id, partner_reference)

    async def store_failed(
        self, failure: Exception, meter_id: uuid.UUID | None, partner_reference: str | None
    ) -> Receipt:
        """The effects were rolled back; the event itself is still kept, marked failed."""
        log.warning(
            "webhook apply failed",
            extra={"webhook_event_id": str(self.event_id), "error": type(failure).__name__},
        )
        async with self.inbox.autocommit().connect() as conn:
            stored = await repository.insert(
                conn,
                event_id=self.event_id,
                event_type=self.event_type,
                status=WebhookStatus.FAILED,
                body=self.raw,
                sha=self.sha,
                error=storable_text(f"{type(failure).__name__}: {failure}"),
                meter_id=meter_id,
                partner_reference=partner_reference,
                next_attempt_at=utc_now() + retry_delay(1),
            )
            if not stored:
                # A concurrent delivery of this id got there first: this one is a duplicate.
                return await self.duplicate(conn)
        return self._receipt("failed")
