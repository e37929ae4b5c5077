"""Charger state that must survive a restart: the socket and probe (liveness), energy today and
the transaction each connector carries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("chargers") as t:
        t.add_column(
            sa.Column("connected", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        t.add_column(sa.Column("connected_at", TS, nullable=True))
        t.add_column(sa.Column("disconnected_at", TS, nullable=True))
        t.add_column(sa.Column("disconnect_reason", sa.String(length=64), nullable=True))
        t.add_column(sa.Column("restarted_at", TS, nullable=True))
        t.add_column(
            sa.Column("probe_state", sa.String(length=8), nullable=False, server_default="idle")
        )
        t.add_column(sa.Column("probe_at", TS, nullable=True))
    with op.batch_alter_table("charger_connectors") as t:
        t.add_column(sa.Column("energy_today_wh", sa.Float(), nullable=False, server_default="0"))
        t.add_column(sa.Column("energy_day", sa.Date(), nullable=True))
        t.add_column(sa.Column("transaction_id", sa.String(length=36), nullable=True))
        t.add_column(sa.Column("transaction_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("charger_connectors") as t:
        for name in ("transaction_at", "transaction_id", "energy_day", "energy_today_wh"):
            t.drop_column(name)
    with op.batch_alter_table("chargers") as t:
        for name in (
            "probe_at",
            "probe_state",
            "restarted_at",
            "disconnect_reason",
            "disconnected_at",
            "connected_at",
            "connected",
        ):
            t.drop_column(name)
