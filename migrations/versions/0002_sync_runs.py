"""Reconciliation runs and the columns the Leap loop keeps on meters.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("meters", sa.Column("leap_enrollment_updated_at", sa.DateTime(timezone=True)))
    op.add_column("meters", sa.Column("seen_run_id", sa.BigInteger()))
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("modified_since", sa.DateTime(timezone=True)),
        sa.Column("phase", sa.Text(), server_default=sa.text("'meters'"), nullable=False),
        sa.Column("page_token", sa.Text()),
        sa.Column("pages", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("meters", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("errors", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index("ix_sync_runs_mode_status_id", "sync_runs", ["mode", "status", "id"])
    op.create_index("ix_sync_runs_status_id", "sync_runs", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_sync_runs_status_id", table_name="sync_runs")
    op.drop_index("ix_sync_runs_mode_status_id", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_column("meters", "seen_run_id")
    op.drop_column("meters", "leap_enrollment_updated_at")
