"""Membership rows carry copies of their meter's reference and archived flag, and whether
a higher-ranked window of their meter overlaps them, so a roster reads neither `meters`
nor other windows (app/groups/copies.py says how they stay right).

Backfilled from `meters` here; run with the service's writers stopped (a writer of the
old version would not keep the copies current).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("group_memberships", sa.Column("partner_reference", sa.Text()))
    op.add_column("group_memberships", sa.Column("meter_archived", sa.Boolean()))
    op.add_column("group_memberships", sa.Column("unbeaten", sa.Boolean()))
    # Every row confirmed now: an unknown meter's copy is (NULL, false).
    op.execute(
        """
        UPDATE group_memberships gm
        SET (partner_reference, meter_archived) = (
                SELECT max(m.partner_reference), COALESCE(bool_or(m.is_archived), false)
                FROM meters m WHERE m.meter_id = gm.meter_id),
            unbeaten = NOT EXISTS (
                SELECT 1 FROM group_memberships o
                WHERE o.meter_id = gm.meter_id AND o.first_day <= gm.last_day
                  AND o.last_day >= gm.first_day
                  AND (o.window_start, o.seq, o.market_group_id, o.window_end, o.source)
                    > (gm.window_start, gm.seq, gm.market_group_id, gm.window_end, gm.source))
        """
    )
    op.create_index(
        "ix_group_memberships_unconfirmed",
        "group_memberships",
        ["meter_id", "seq"],
        postgresql_where=sa.text("unbeaten IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_group_memberships_unconfirmed", table_name="group_memberships")
    op.drop_column("group_memberships", "unbeaten")
    op.drop_column("group_memberships", "meter_archived")
    op.drop_column("group_memberships", "partner_reference")
