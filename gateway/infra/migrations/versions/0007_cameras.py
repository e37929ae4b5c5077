"""Plate cameras: devices of kind "camera" keep their vendor, secret hash, lane and lane
direction; every pushed read goes to camera_reads, unique per (camera, record id).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("vendor", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("secret_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lane_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("direction", sa.String(length=4), nullable=True))
    op.create_table(
        "camera_reads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.Column("vendor", sa.String(length=16), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("lane_id", sa.String(length=64), nullable=True),
        sa.Column("plate", sa.String(length=16), nullable=True),
        sa.Column("raw_plate", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("direction", sa.String(length=4), nullable=True),
        sa.Column("colour", sa.String(length=16), nullable=True),
        sa.Column("vehicle_type", sa.String(length=32), nullable=True),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("camera_ts", TS, nullable=True),
        sa.Column("read_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("clock_off", sa.String(length=16), nullable=True),
        sa.Column("images", sa.JSON(), nullable=False),
        sa.Column("dropped_images", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("camera_id", "record_id", name="uq_camera_reads_record"),
    )
    op.create_index(
        "ix_camera_reads_camera_read_at", "camera_reads", ["camera_id", "read_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_camera_reads_camera_read_at", table_name="camera_reads")
    op.drop_table("camera_reads")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("direction")
        batch.drop_column("lane_id")
        batch.drop_column("secret_hash")
        batch.drop_column("vendor")
