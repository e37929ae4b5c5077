"""EV chargers: chargers, connector status, charger events, charging sessions and samples.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "charger_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=True),
        sa.Column("ts", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=50), nullable=False),
        sa.Column("error_code", sa.String(length=50), nullable=True),
        sa.Column("vendor_error_code", sa.String(length=50), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_charger_events_charger_ts", "charger_events", ["charger_id", "ts"], unique=False
    )
    op.create_table(
        "chargers",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("vendor", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("current", sa.String(length=4), nullable=False),
        sa.Column("power_kw", sa.Float(), nullable=False),
        sa.Column("connectors", sa.Integer(), nullable=False),
        sa.Column("lifecycle", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=64), nullable=True),
        sa.Column("password_set_at", TS, nullable=True),
        sa.Column("heartbeat_s", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=True),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("serial", sa.String(length=64), nullable=True),
        sa.Column("last_boot_at", TS, nullable=True),
        sa.Column("last_boot_reason", sa.String(length=32), nullable=True),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_chargers_site_id"), "chargers", ["site_id"], unique=False)
    op.create_table(
        "charger_connectors",
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("since", TS, nullable=True),
        sa.Column("error_code", sa.String(length=50), nullable=True),
        sa.Column("vendor_error_code", sa.String(length=50), nullable=True),
        sa.Column("info", sa.String(length=200), nullable=True),
        sa.Column("last_meter_wh", sa.Float(), nullable=True),
        sa.Column("last_meter_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["charger_id"],
            ["chargers.id"],
        ),
        sa.PrimaryKeyConstraint("charger_id", "connector_id"),
    )
    op.create_table(
        "charging_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("id_tag", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("charging_ended_at", TS, nullable=True),
        sa.Column("meter_start_wh", sa.Float(), nullable=True),
        sa.Column("meter_stop_wh", sa.Float(), nullable=True),
        sa.Column("stop_reason", sa.String(length=32), nullable=True),
        sa.Column("tariff_version", sa.String(length=32), nullable=True),
        sa.Column("total_fen", sa.Integer(), nullable=True),
        sa.Column("bill", sa.JSON(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["charger_id"],
            ["chargers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("charger_id", "transaction_id", name="uq_charging_tx"),
    )
    op.create_index(
        "ix_charging_sessions_started", "charging_sessions", ["started_at"], unique=False
    )
    op.create_table(
        "charging_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("energy_wh", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["charging_sessions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "ts", name="uq_charging_sample"),
    )
    op.create_index(
        op.f("ix_charging_samples_session_id"), "charging_samples", ["session_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("charging_samples")
    op.drop_table("charging_sessions")
    op.drop_table("charger_events")
    op.drop_table("charger_connectors")
    op.drop_table("chargers")
