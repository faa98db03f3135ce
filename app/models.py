"""SQLAlchemy models: the whole schema in one place, so Alembic and readers see it at once.

Relationships are `lazy="raise"`: every query says what it loads.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.db import metadata

TZ = DateTime(timezone=True)


class WebhookStatus(StrEnum):
    """Where a stored webhook event stands (docs/operations.md says what each means)."""

    RECEIVED = "received"
    APPLIED = "applied"
    FAILED = "failed"  # apply failed; the worker retries it
    IGNORED = "ignored"  # unknown event type, kept
    DEAD = "dead"  # invalid payload, or retries exhausted: for ops to look at


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DEAD = "dead"


class JobKind(StrEnum):
    REFRESH_METER = "refresh_meter"


class RunMode(StrEnum):
    DELTA = "delta"
    FULL = "full"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Base(DeclarativeBase):
    metadata = metadata


def _now() -> Any:
    return mapped_column(TZ, nullable=False, server_default=func.now())


class Partner(Base):
    """One record per partner_reference: the join key to the partner's own assets."""

    __tablename__ = "partners"

    partner_reference: Mapped[str] = mapped_column(Text, primary_key=True)
    connect_session_status: Mapped[str | None] = mapped_column(Text)
    connect_session_updated_at: Mapped[datetime | None] = mapped_column(TZ)
    authorization_status: Mapped[str | None] = mapped_column(Text)
    authorization_utility: Mapped[str | None] = mapped_column(Text)
    authorization_updated_at: Mapped[datetime | None] = mapped_column(TZ)
    # When an authorization first COMPLETED: a later INITIATED never hides it.
    authorization_completed_at: Mapped[datetime | None] = mapped_column(TZ)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    meters: Mapped[list[Meter]] = relationship(back_populates="partner", lazy="raise")


class PartnerEvent(Base):
    """History of a partner record: connect sessions, authorizations, meters moving in/out."""

    __tablename__ = "partner_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    partner_reference: Mapped[str] = mapped_column(
        Text, ForeignKey("partners.partner_reference"), nullable=False
    )
    # connect_session | authorization | meter_linked | meter_unlinked
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str | None] = mapped_column(Text)
    utility_name: Mapped[str | None] = mapped_column(Text)
    meter_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    webhook_event_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    occurred_at: Mapped[datetime] = _now()

    __table_args__ = (Index("ix_partner_events_reference_id", "partner_reference", "id"),)


class Meter(Base):
    __tablename__ = "meters"

    meter_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    partner_reference: Mapped[str | None] = mapped_column(
        Text, ForeignKey("partners.partner_reference"), index=True
    )
    # The reference before the last write: how link history is told apart under concurrency.
    previous_partner_reference: Mapped[str | None] = mapped_column(Text)
    transmission_region: Mapped[str | None] = mapped_column(Text)
    meter_type: Mapped[str | None] = mapped_column(Text)
    enrollment_status: Mapped[str | None] = mapped_column(Text)
    # [{"participation_preference", "start_time", "end_time"}], one per start_time
    participation_preferences: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    # Leap's PartnerRequiredActions object as last received, e.g. {"partner": [...]}
    required_actions: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    # Filled from Leap's API records (the Leap loop); columns for filtering.
    utility_name: Mapped[str | None] = mapped_column(Text)
    load_zone: Mapped[str | None] = mapped_column(Text)
    leap_meter: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Leap's connection_references: the Connect refIds whose authorization produced it.
    connection_references: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    leap_enrollment: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Leap's audit.updated_at of the newest fetched records: older records never overwrite.
    leap_updated_at: Mapped[datetime | None] = mapped_column(TZ)
    leap_enrollment_updated_at: Mapped[datetime | None] = mapped_column(TZ)
    # The last full reconciliation run that saw this meter in Leap's answer.
    seen_run_id: Mapped[int | None] = mapped_column(BigInteger)
    is_archived: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    archived_at: Mapped[datetime | None] = mapped_column(TZ)
    first_seen_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    partner: Mapped[Partner | None] = relationship(back_populates="meters", lazy="raise")

    __table_args__ = (
        Index("ix_meters_updated_at_meter_id", "updated_at", "meter_id"),
        # Region and status together (the most common filter pair) in the list's order.
        Index(
            "ix_meters_region_status_meter_id",
            "transmission_region",
            "enrollment_status",
            "meter_id",
        ),
        # GET /v1/meters filters, in its meter_id order (migration 0003).
        Index("ix_meters_transmission_region_meter_id", "transmission_region", "meter_id"),
        Index("ix_meters_utility_name_meter_id", "utility_name", "meter_id"),
        Index("ix_meters_load_zone_meter_id", "load_zone", "meter_id"),
        Index("ix_meters_enrollment_status_meter_id", "enrollment_status", "meter_id"),
        Index("ix_meters_archived_meter_id", "meter_id", postgresql_where=text("is_archived")),
        # A roster reads each member's reference and archived flag from this index alone.
        Index(
            "ix_meters_roster",
            "meter_id",
            postgresql_include=["partner_reference", "is_archived"],
        ),
        # No pending list (every lookup would scan it) and no entries for the meters
        # that have no connection reference (most of them).
        Index(
            "ix_meters_connection_references",
            "connection_references",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
            postgresql_where=text("connection_references IS NOT NULL"),
        ),
    )


class MarketGroup(Base):
    __tablename__ = "market_groups"

    market_group_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    # The group's one window [window_start, window_end), from its latest group.updated.
    window_start: Mapped[datetime | None] = mapped_column(TZ)
    window_end: Mapped[datetime | None] = mapped_column(TZ)
    # The market zone its trade dates are read in: its members' region, else the zone in
    # which its window starts at local midnight (see app/groups/service.py).
    time_zone: Mapped[str | None] = mapped_column(Text)
    # The group.updated event whose window and members the group holds: the latest word
    # from Leap about it (NULL for groups known only from enrollment records).
    source_event_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class GroupMembership(Base):
    """A meter's membership of a market group over a window, and the trade dates it covers.

    source "webhook" rows come from group.updated: the group's one window, replaced with
    its members by each event. source "enrollment" rows come from Leap's ACTIVE
    program_enrollment periods (replaced per meter). `first_day`..`last_day` are the trade
    dates the window covers, computed when it is written by Leap's rule for its kind (a
    group's end is exclusive, a delivery period's end is the start of its last day).
    Among the windows covering a day, the latest start wins, then the later write (seq).
    No foreign key to meters: a roster may name a meter before its meter.created arrives.
    """

    __tablename__ = "group_memberships"

    # The key in this order also walks a group's members in meter_id order (the roster's
    # keyset): a second index for that cost 30% of a 100k group.updated.
    market_group_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    meter_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    window_end: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    first_day: Mapped[date] = mapped_column(Date, nullable=False)
    last_day: Mapped[date] = mapped_column(Date, nullable=False)
    seq: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default=text("nextval('group_membership_seq')")
    )
    # Copies of the meter's reference and archived flag, so a roster never reads `meters`
    # (app/groups/copies.py). `meter_archived` NULL: no copy yet (a roster reads the meter
    # row instead); an unknown meter's copy is (NULL, false).
    partner_reference: Mapped[str | None] = mapped_column(Text)
    meter_archived: Mapped[bool | None] = mapped_column(Boolean)
    # No higher-ranked window of the meter overlaps this one, so it wins every day it
    # covers. NULL: not confirmed yet; only the confirm round sets it.
    unbeaten: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (
        # The rows still to confirm, by meter (the confirm round's batches); normally none.
        Index(
            "ix_group_memberships_unconfirmed",
            "meter_id",
            "seq",
            postgresql_where=text("unbeaten IS NULL"),
        ),
        # "Which window wins for this meter on this day" is one probe per member.
        Index(
            "ix_group_memberships_meter_day",
            "meter_id",
            "first_day",
            postgresql_include=[
                "last_day",
                "window_start",
                "seq",
                "market_group_id",
                "window_end",
                "source",
            ],
        ),
    )


class WebhookEvent(Base):
    """The inbox: every delivery Leap made that we stored, keyed by Leap's event id."""

    __tablename__ = "webhook_events"

    webhook_event_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), nullable=False, unique=True)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)  # WebhookStatus
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    meter_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    partner_reference: Mapped[str | None] = mapped_column(Text)
    # Raw bytes as delivered (pruned after retention; the id row stays for dedupe).
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_sha256: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    body_size: Mapped[int] = mapped_column(Integer, nullable=False)
    duplicate_deliveries: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("0")
    )
    # Redeliveries of this id with a different body: flagged, the first body is kept.
    conflicting_deliveries: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("0")
    )
    received_at: Mapped[datetime] = _now()
    applied_at: Mapped[datetime | None] = mapped_column(TZ)
    updated_at: Mapped[datetime] = _now()
    next_attempt_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (
        Index("ix_webhook_events_status_seq", "status", "seq"),
        Index("ix_webhook_events_type_seq", "event_type", "seq"),
        Index("ix_webhook_events_meter_id", "meter_id"),
        Index(
            "ix_webhook_events_retry",
            "next_attempt_at",
            postgresql_where=text(f"status = '{WebhookStatus.FAILED}'"),
        ),
    )


class Job(Base):
    """Durable work for the worker, claimed with FOR UPDATE SKIP LOCKED.

    At most one queued job per (kind, meter_id): enqueueing again coalesces.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    meter_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    status: Mapped[str] = mapped_column(  # JobStatus
        Text, nullable=False, server_default=text("'queued'")
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    run_after: Mapped[datetime] = _now()
    locked_by: Mapped[str | None] = mapped_column(Text)
    locked_at: Mapped[datetime | None] = mapped_column(TZ)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        Index(
            "uq_jobs_queued_kind_meter",
            "kind",
            "meter_id",
            unique=True,
            postgresql_where=text(f"status = '{JobStatus.QUEUED}'"),
            postgresql_nulls_not_distinct=True,
        ),
        Index(
            "ix_jobs_claim",
            "run_after",
            "id",
            postgresql_where=text(f"status = '{JobStatus.QUEUED}'"),
        ),
    )


class SyncRun(Base):
    """One reconciliation with Leap's API; its progress is stored so a killed run resumes."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    mode: Mapped[str] = mapped_column(Text, nullable=False)  # RunMode
    status: Mapped[str] = mapped_column(Text, nullable=False)  # RunStatus
    trigger: Mapped[str] = mapped_column(Text, nullable=False)  # schedule | request | cli
    # Delta runs: Leap's last_modified_date_time filter used for every page.
    modified_since: Mapped[datetime | None] = mapped_column(TZ)
    phase: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'meters'"))
    page_token: Mapped[str | None] = mapped_column(Text)
    pages: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    meters: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    errors: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    # What the run changed: meters first stored, updated by a newer record, archived.
    meters_new: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    meters_updated: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    meters_archived: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(TZ)
    finished_at: Mapped[datetime | None] = mapped_column(TZ)
    heartbeat_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (
        Index("ix_sync_runs_mode_status_id", "mode", "status", "id"),
        Index("ix_sync_runs_status_id", "status", "id"),
    )
