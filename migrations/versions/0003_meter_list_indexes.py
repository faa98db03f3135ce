"""Indexes for the filters of GET /v1/meters.

Each leads with the filtered column and ends with meter_id, the list's order and keyset,
so a filtered page is one index range scan with no sort. partner_reference
(ix_meters_partner_reference: few meters each) and updated_since
(ix_meters_updated_at_meter_id) already have theirs; market_group_id uses
group_memberships' primary key.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEYED = ("transmission_region", "utility_name", "load_zone", "enrollment_status")


def upgrade() -> None:
    for column in _KEYED:
        op.create_index(f"ix_meters_{column}_meter_id", "meters", [column, "meter_id"])
    # Archived meters are few: a partial index finds them without walking the others.
    op.create_index(
        "ix_meters_archived_meter_id",
        "meters",
        ["meter_id"],
        postgresql_where=sa.text("is_archived"),
    )


def downgrade() -> None:
    op.drop_index("ix_meters_archived_meter_id", table_name="meters")
    for column in reversed(_KEYED):
        op.drop_index(f"ix_meters_{column}_meter_id", table_name="meters")
