"""Patrol drones (issue 13): the town's drones, their live state (restored at a restart) and
the commands sent to them (written through: pending before the wire, outcome when final).

Revision ID: 0011_drones
Revises: 0010_bodycams
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_drones"
down_revision = "0010_bodycams"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drones",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("dock_sn", sa.String(length=64), nullable=True),
        sa.Column("aircraft_sn", sa.String(length=64), nullable=True),
        sa.Column("system_id", sa.Integer(), nullable=True),
        sa.Column("patrol_area", sa.JSON(), nullable=False),
        sa.Column("home_lat", sa.Float(), nullable=False),
        sa.Column("home_lon", sa.Float(), nullable=False),
        sa.Column("lifecycle", sa.String(length=16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dock_sn"),
        sa.UniqueConstraint("aircraft_sn"),
        sa.UniqueConstraint("system_id"),
    )
    op.create_table(
        "drone_state",
        sa.Column("drone_id", sa.String(length=64), nullable=False),
        sa.Column("link", sa.String(length=16), nullable=False),
        sa.Column("last_heard", TS, nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("height_m", sa.Float(), nullable=True),
        sa.Column("elevation_m", sa.Float(), nullable=True),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("heading_deg", sa.Float(), nullable=True),
        sa.Column("position_at", TS, nullable=True),
        sa.Column("battery_percent", sa.Float(), nullable=True),
        sa.Column("mode", sa.String(length=32), nullable=True),
        sa.Column("flying", sa.Boolean(), nullable=True),
        sa.Column("armed", sa.Boolean(), nullable=True),
        sa.Column("text", sa.String(length=256), nullable=True),
        sa.Column("dock_link", sa.String(length=16), nullable=True),
        sa.Column("dock_heard", TS, nullable=True),
        sa.Column("dock_mode", sa.String(length=32), nullable=True),
        sa.Column("drone_in_dock", sa.Boolean(), nullable=True),
        sa.Column("drone_charging", sa.Boolean(), nullable=True),
        sa.Column("cover_state", sa.Integer(), nullable=True),
        sa.Column("alerts", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("drone_id"),
    )
    op.create_table(
        "drone_commands",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("drone_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result_code", sa.BigInteger(), nullable=True),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_drone_commands_drone_at", "drone_commands", ["drone_id", "requested_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_drone_commands_drone_at", table_name="drone_commands")
    op.drop_table("drone_commands")
    op.drop_table("drone_state")
    op.drop_table("drones")
