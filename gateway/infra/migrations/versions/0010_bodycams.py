"""Body cams over GB/T 28181 (issue 12): officers, cams with their digest HA1, the cams' live
state (restored at a restart) and their alarms.

Revision ID: 0010_bodycams
Revises: 0009_fcnt_bigint
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_bodycams"
down_revision = "0009_fcnt_bigint"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "officers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("squad", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "bodycams",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("officer_id", sa.String(length=32), nullable=True),
        sa.Column("ha1", sa.String(length=32), nullable=True),
        sa.Column("realm", sa.String(length=64), nullable=True),
        sa.Column("password_set_at", TS, nullable=True),
        sa.Column("lifecycle", sa.String(length=16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["officer_id"], ["officers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bodycams_officer_id", "bodycams", ["officer_id"], unique=False)
    op.create_table(
        "bodycam_state",
        sa.Column("device_id", sa.String(length=20), nullable=False),
        sa.Column("contact", sa.String(length=256), nullable=True),
        sa.Column("transport", sa.String(length=8), nullable=True),
        sa.Column("source_addr", sa.String(length=64), nullable=True),
        sa.Column("registered_until", TS, nullable=True),
        sa.Column("last_keepalive", TS, nullable=True),
        sa.Column("battery_percent", sa.Float(), nullable=True),
        sa.Column("storage_free_mb", sa.Float(), nullable=True),
        sa.Column("storage_total_mb", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("position_at", TS, nullable=True),
        sa.Column("speed_kmh", sa.Float(), nullable=True),
        sa.Column("direction_deg", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("manufacturer", sa.String(length=128), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("firmware", sa.String(length=128), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "bodycam_alarms",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=20), nullable=False),
        sa.Column("at", TS, nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("method", sa.Integer(), nullable=True),
        sa.Column("alarm_type", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=256), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("case_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_bodycam_alarms_device_at", "bodycam_alarms", ["device_id", "received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_bodycam_alarms_device_at", table_name="bodycam_alarms")
    op.drop_table("bodycam_alarms")
    op.drop_table("bodycam_state")
    op.drop_index("ix_bodycams_officer_id", table_name="bodycams")
    op.drop_table("bodycams")
    op.drop_table("officers")
