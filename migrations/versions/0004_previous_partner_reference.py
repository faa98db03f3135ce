"""The reference a meter had before its last write, for exact link history.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("meters", sa.Column("previous_partner_reference", sa.Text()))


def downgrade() -> None:
    op.drop_column("meters", "previous_partner_reference")
