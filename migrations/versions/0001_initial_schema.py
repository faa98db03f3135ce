"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 17:36:53.680940
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Orders membership writes: among windows with the same start, the later write wins.
    op.execute("CREATE SEQUENCE group_membership_seq")
    op.create_table(
        "group_memberships",
        sa.Column("market_group_id", sa.UUID(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("meter_id", sa.UUID(), nullable=False),
        sa.Column(
            "seq",
            sa.BigInteger(),
            server_default=sa.text("nextval('group_membership_seq')"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "market_group_id",
            "window_start",
            "window_end",
            "source",
            "meter_id",
            name=op.f("pk_group_memberships"),
        ),
    )
    op.create_index(
        "ix_group_memberships_meter_start",
        "group_memberships",
        ["meter_id", "window_start"],
        unique=False,
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("meter_id", sa.UUID(), nullable=True),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default=sa.text("'queued'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "run_after", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("locked_by", sa.Text(), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(
        "ix_jobs_claim",
        "jobs",
        ["run_after", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "uq_jobs_queued_kind_meter",
        "jobs",
        ["kind", "meter_id"],
        unique=True,
        postgresql_where=sa.text("status = 'queued'"),
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "market_groups",
        sa.Column("market_group_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("market_group_id", name=op.f("pk_market_groups")),
    )
    op.create_table(
        "partners",
        sa.Column("partner_reference", sa.Text(), nullable=False),
        sa.Column("connect_session_status", sa.Text(), nullable=True),
        sa.Column("connect_session_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("authorization_status", sa.Text(), nullable=True),
        sa.Column("authorization_utility", sa.Text(), nullable=True),
        sa.Column("authorization_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("partner_reference", name=op.f("pk_partners")),
    )
    op.create_table(
        "webhook_events",
        sa.Column("webhook_event_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("meter_id", sa.UUID(), nullable=True),
        sa.Column("partner_reference", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("body_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column(
            "duplicate_deliveries", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "conflicting_deliveries", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("webhook_event_id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("seq", name=op.f("uq_webhook_events_seq")),
    )
    # Bodies are kept as delivered: compressing a 4 MB roster cost ~0.1 s per event.
    op.execute("ALTER TABLE webhook_events ALTER COLUMN body SET STORAGE EXTERNAL")
    op.create_index("ix_webhook_events_meter_id", "webhook_events", ["meter_id"], unique=False)
    op.create_index(
        "ix_webhook_events_retry",
        "webhook_events",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'failed'"),
    )
    op.create_index(
        "ix_webhook_events_status_seq", "webhook_events", ["status", "seq"], unique=False
    )
    op.create_index(
        "ix_webhook_events_type_seq", "webhook_events", ["event_type", "seq"], unique=False
    )
    op.create_table(
        "meters",
        sa.Column("meter_id", sa.UUID(), nullable=False),
        sa.Column("partner_reference", sa.Text(), nullable=True),
        sa.Column("transmission_region", sa.Text(), nullable=True),
        sa.Column("meter_type", sa.Text(), nullable=True),
        sa.Column("enrollment_status", sa.Text(), nullable=True),
        sa.Column(
            "participation_preferences",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "required_actions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("utility_name", sa.Text(), nullable=True),
        sa.Column("load_zone", sa.Text(), nullable=True),
        sa.Column("leap_meter", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("leap_enrollment", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("leap_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_archived", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["partner_reference"],
            ["partners.partner_reference"],
            name=op.f("fk_meters_partner_reference_partners"),
        ),
        sa.PrimaryKeyConstraint("meter_id", name=op.f("pk_meters")),
    )
    op.create_index(
        op.f("ix_meters_partner_reference"), "meters", ["partner_reference"], unique=False
    )
    op.create_index(
        "ix_meters_region_status",
        "meters",
        ["transmission_region", "enrollment_status"],
        unique=False,
    )
    op.create_index(
        "ix_meters_updated_at_meter_id", "meters", ["updated_at", "meter_id"], unique=False
    )
    op.create_table(
        "partner_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("partner_reference", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("utility_name", sa.Text(), nullable=True),
        sa.Column("meter_id", sa.UUID(), nullable=True),
        sa.Column("webhook_event_id", sa.UUID(), nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["partner_reference"],
            ["partners.partner_reference"],
            name=op.f("fk_partner_events_partner_reference_partners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_events")),
    )
    op.create_index(
        "ix_partner_events_reference_id",
        "partner_events",
        ["partner_reference", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_partner_events_reference_id", table_name="partner_events")
    op.drop_table("partner_events")
    op.drop_index("ix_meters_updated_at_meter_id", table_name="meters")
    op.drop_index("ix_meters_region_status", table_name="meters")
    op.drop_index(op.f("ix_meters_partner_reference"), table_name="meters")
    op.drop_table("meters")
    op.drop_index("ix_webhook_events_type_seq", table_name="webhook_events")
    op.drop_index("ix_webhook_events_status_seq", table_name="webhook_events")
    op.drop_index(
        "ix_webhook_events_retry",
        table_name="webhook_events",
        postgresql_where=sa.text("status = 'failed'"),
    )
    op.drop_index("ix_webhook_events_meter_id", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("partners")
    op.drop_table("market_groups")
    op.drop_index(
        "uq_jobs_queued_kind_meter",
        table_name="jobs",
        postgresql_where=sa.text("status = 'queued'"),
        postgresql_nulls_not_distinct=True,
    )
    op.drop_index("ix_jobs_claim", table_name="jobs", postgresql_where=sa.text("status = 'queued'"))
    op.drop_table("jobs")
    op.drop_index("ix_group_memberships_meter_start", table_name="group_memberships")
    op.drop_table("group_memberships")
    op.execute("DROP SEQUENCE group_membership_seq")
