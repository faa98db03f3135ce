"""What each reconciliation run changed: meters new, updated (a newer record stored) and
archived, counted as pages are stored (shown by `meter-sync sync` and /v1/sync/runs).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = ("meters_new", "meters_updated", "meters_archived")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column(
            "sync_runs",
            sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0")),
        )


def downgrade() -> None:
    for name in COLUMNS:
        op.drop_column("sync_runs", name)
