"""Chargers across several gateway instances (issue 16): where each charger is connected
(``charger_connections``) and the commands relayed to the instance that holds a charger's
connection (``charger_commands``). Both are only used on PostgreSQL; SQLite (one instance)
has them empty.

Revision ID: 0015_charger_cluster
Revises: 0014_streets
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)

revision = "0015_charger_cluster"
down_revision = "0014_streets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charger_connections",
        sa.Column("charger_id", sa.String(length=48), primary_key=True),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("remote", sa.String(length=64), nullable=False),
    )
    op.create_table(
        "charger_commands",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("charger_id", sa.String(length=48), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_charger_commands_charger_id", "charger_commands", ["charger_id"])


def downgrade() -> None:
    op.drop_index("ix_charger_commands_charger_id", table_name="charger_commands")
    op.drop_table("charger_commands")
    op.drop_table("charger_connections")
