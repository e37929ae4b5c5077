"""Initial schema: zones, sites, berths, devices, api tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "zones",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("polygon", sa.JSON(), nullable=False),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("counting", sa.String(16), nullable=False),
        sa.Column("segment_class", sa.String(16), nullable=False),
        sa.Column("zone_id", sa.String(64), sa.ForeignKey("zones.id"), nullable=True),
        sa.Column("address", sa.String(300), nullable=False, server_default=""),
        sa.Column("controller_id", sa.String(64), nullable=True),
        sa.Column("occupied_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("count_updated_at", TS, nullable=True),
    )
    op.create_table(
        "berths",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.id"), nullable=False),
        sa.Column("number", sa.String(16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="unknown"),
        sa.Column("since", TS, nullable=True),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("last_fcnt", sa.Integer(), nullable=True),
    )
    op.create_index("ix_berths_site_id", "berths", ["site_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("berth_id", sa.String(64), sa.ForeignKey("berths.id"), nullable=True),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.id"), nullable=True),
        sa.Column("lifecycle", sa.String(16), nullable=False, server_default="provisioned"),
        sa.Column("heartbeat_s", sa.Integer(), nullable=True),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("battery_mv", sa.Integer(), nullable=True),
        sa.Column("rssi", sa.Float(), nullable=True),
        sa.Column("snr", sa.Float(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("berth_id", name="uq_devices_berth_id"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("devices")
    op.drop_index("ix_berths_site_id", "berths")
    op.drop_table("berths")
    op.drop_table("sites")
    op.drop_table("zones")
