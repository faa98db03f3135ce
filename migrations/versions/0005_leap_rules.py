"""Leap's window rules: trade dates each membership covers, a group's one window and
zone, connect references, first completed authorization; repair of infinite instants.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Default zones (MARKET_TIMEZONES may override them at run time; rows written from now on
# use the configured table). Used only to backfill rows written before this migration.
_ZONES = """(VALUES ('CAISO', 'America/Los_Angeles'), ('WECC_PC', 'America/Los_Angeles'),
    ('ERCOT', 'America/Chicago'), ('SERC', 'America/Chicago'),
    ('NYISO', 'America/New_York'), ('ISONE', 'America/New_York'),
    ('PJM', 'America/New_York'), ('WECC_SW', 'America/Phoenix')) AS z(region, zone)"""


def upgrade() -> None:
    # Instants PostgreSQL stores as +-infinity (asyncpg writes datetime.min/max so) made
    # every later read fail: such windows are dropped, such versions forgotten.
    op.execute(
        "DELETE FROM group_memberships WHERE NOT isfinite(window_start) OR NOT isfinite(window_end)"
    )
    for column in ("leap_updated_at", "leap_enrollment_updated_at"):
        op.execute(f"UPDATE meters SET {column} = NULL WHERE NOT isfinite({column})")

    op.add_column("group_memberships", sa.Column("first_day", sa.Date()))
    op.add_column("group_memberships", sa.Column("last_day", sa.Date()))
    # Webhook windows end exclusively (the group becomes inactive at its end); enrollment
    # windows inclusively (a delivery period ends at the start of its last day).
    op.execute(
        f"""
        UPDATE group_memberships gm SET
            first_day = CASE WHEN (gm.window_start AT TIME ZONE w.zone)::time = '00:00'
                             THEN (gm.window_start AT TIME ZONE w.zone)::date
                             ELSE (gm.window_start AT TIME ZONE w.zone)::date + 1 END,
            last_day = CASE WHEN gm.source = 'webhook'
                            THEN ((gm.window_end - interval '1 microsecond')
                                  AT TIME ZONE w.zone)::date
                            ELSE (gm.window_end AT TIME ZONE w.zone)::date END
        FROM (
            SELECT m2.meter_id, COALESCE(z.zone, 'UTC') AS zone
            FROM (SELECT DISTINCT meter_id FROM group_memberships) m2
            LEFT JOIN meters m ON m.meter_id = m2.meter_id
            LEFT JOIN {_ZONES} ON z.region = m.transmission_region
        ) w
        WHERE w.meter_id = gm.meter_id
        """
    )
    op.alter_column("group_memberships", "first_day", nullable=False)
    op.alter_column("group_memberships", "last_day", nullable=False)
    op.drop_index("ix_group_memberships_meter_start", table_name="group_memberships")
    # The key in this order also walks a group's members in meter_id order (the roster).
    op.execute(
        "ALTER TABLE group_memberships DROP CONSTRAINT pk_group_memberships, "
        "ADD CONSTRAINT pk_group_memberships "
        "PRIMARY KEY (market_group_id, meter_id, window_start, window_end, source)"
    )
    op.create_index(
        "ix_group_memberships_meter_day",
        "group_memberships",
        ["meter_id", "first_day"],
        postgresql_include=[
            "last_day",
            "window_start",
            "seq",
            "market_group_id",
            "window_end",
            "source",
        ],
    )

    op.add_column("market_groups", sa.Column("window_start", sa.DateTime(timezone=True)))
    op.add_column("market_groups", sa.Column("window_end", sa.DateTime(timezone=True)))
    op.add_column("market_groups", sa.Column("time_zone", sa.Text()))
    op.add_column("market_groups", sa.Column("source_event_id", sa.Uuid()))
    op.add_column("partners", sa.Column("authorization_completed_at", sa.DateTime(timezone=True)))
    op.execute(
        """
        UPDATE partners p SET authorization_completed_at = (
            SELECT min(e.occurred_at) FROM partner_events e
            WHERE e.partner_reference = p.partner_reference AND e.kind = 'authorization'
              AND e.status = 'COMPLETED')
        """
    )
    op.add_column("meters", sa.Column("connection_references", postgresql.ARRAY(sa.Text())))
    op.execute(
        """
        UPDATE meters SET connection_references = ARRAY(
            SELECT jsonb_array_elements_text(leap_meter->'connection_references'))
        WHERE jsonb_typeof(leap_meter->'connection_references') = 'array'
        """
    )
    op.create_index(
        "ix_meters_roster",
        "meters",
        ["meter_id"],
        postgresql_include=["partner_reference", "is_archived"],
    )
    # No pending list (every lookup would scan it: 24 ms at 1M meters) and no entries
    # for meters without a connection reference.
    op.create_index(
        "ix_meters_connection_references",
        "meters",
        ["connection_references"],
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
        postgresql_where=sa.text("connection_references IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_meters_connection_references", table_name="meters")
    op.drop_index("ix_meters_roster", table_name="meters")
    op.drop_column("meters", "connection_references")
    op.drop_column("partners", "authorization_completed_at")
    op.drop_column("market_groups", "source_event_id")
    op.drop_column("market_groups", "time_zone")
    op.drop_column("market_groups", "window_end")
    op.drop_column("market_groups", "window_start")
    op.drop_index("ix_group_memberships_meter_day", table_name="group_memberships")
    op.execute(
        "ALTER TABLE group_memberships DROP CONSTRAINT pk_group_memberships, "
        "ADD CONSTRAINT pk_group_memberships "
        "PRIMARY KEY (market_group_id, window_start, window_end, source, meter_id)"
    )
    op.create_index(
        "ix_group_memberships_meter_start", "group_memberships", ["meter_id", "window_start"]
    )
    op.drop_column("group_memberships", "last_day")
    op.drop_column("group_memberships", "first_day")
