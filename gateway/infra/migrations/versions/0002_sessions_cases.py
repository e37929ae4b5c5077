"""Parking sessions, plate reads, payments, case reports (outbox + mirror), detections.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "case_reports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("berth_id", sa.String(length=64), nullable=True),
        sa.Column("zone_id", sa.String(length=64), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("observed_at", TS, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=True),
        sa.Column("prior_offences", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivery_state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_case_reports_category"), "case_reports", ["category"], unique=False)
    op.create_index("ix_cases_dedup", "case_reports", ["dedup_key", "observed_at"], unique=False)
    op.create_index(
        "ix_cases_delivery", "case_reports", ["delivery_state", "next_attempt_at"], unique=False
    )
    op.create_index("ix_cases_plate", "case_reports", ["plate"], unique=False)
    op.create_table(
        "detections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("berth_id", sa.String(length=64), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("observed_at", TS, nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("image_ref", sa.String(length=500), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_detections_observed", "detections", ["observed_at"], unique=False)
    op.create_table(
        "case_status_updates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["case_reports.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "status", name="uq_case_status_step"),
    )
    op.create_index(
        op.f("ix_case_status_updates_case_id"), "case_status_updates", ["case_id"], unique=False
    )
    op.create_table(
        "plate_reads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=False),
        sa.Column("colour", sa.String(length=8), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("lane", sa.String(length=32), nullable=True),
        sa.Column("image_ref", sa.String(length=500), nullable=True),
        sa.Column("read_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_plate_reads_site_plate", "plate_reads", ["site_id", "plate", "read_at"], unique=False
    )
    op.create_table(
        "parking_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("berth_id", sa.String(length=64), nullable=True),
        sa.Column("plate", sa.String(length=16), nullable=True),
        sa.Column("vehicle_class", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("entry_at", TS, nullable=False),
        sa.Column("exit_at", TS, nullable=True),
        sa.Column("entry_source", sa.String(length=64), nullable=False),
        sa.Column("exit_source", sa.String(length=64), nullable=True),
        sa.Column("tariff_version", sa.String(length=32), nullable=True),
        sa.Column("fee_fen", sa.Integer(), nullable=False),
        sa.Column("paid_fen", sa.Integer(), nullable=False),
        sa.Column("paid_at", TS, nullable=True),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["berth_id"],
            ["berths.id"],
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_parking_sessions_site_id"), "parking_sessions", ["site_id"], unique=False
    )
    op.create_index("ix_sessions_berth", "parking_sessions", ["berth_id", "entry_at"], unique=False)
    op.create_index("ix_sessions_plate", "parking_sessions", ["plate", "entry_at"], unique=False)
    op.create_index(
        "ix_sessions_state_entry", "parking_sessions", ["state", "entry_at"], unique=False
    )
    op.create_index(
        "uq_sessions_open_berth",
        "parking_sessions",
        ["berth_id"],
        unique=True,
        sqlite_where=sa.text("state = 'open' AND berth_id IS NOT NULL"),
        postgresql_where=sa.text("state = 'open' AND berth_id IS NOT NULL"),
    )
    op.create_index(
        "uq_sessions_open_plate",
        "parking_sessions",
        ["site_id", "plate"],
        unique=True,
        sqlite_where=sa.text("state = 'open' AND plate IS NOT NULL"),
        postgresql_where=sa.text("state = 'open' AND plate IS NOT NULL"),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("refund_of", sa.String(length=32), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_ref", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["parking_sessions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["refund_of"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index(op.f("ix_payments_session_id"), "payments", ["session_id"], unique=False)


def downgrade() -> None:
    op.drop_table("payments")
    op.drop_table("parking_sessions")
    op.drop_table("plate_reads")
    op.drop_table("case_status_updates")
    op.drop_table("detections")
    op.drop_table("case_reports")
