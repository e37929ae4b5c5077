"""Lanes across several gateway instances (issue 16): the gate commands relayed to the
instance that drives a gate bus (``gate_commands``) and each lane's gate as its driver last
read it (``gate_states``). Only used on PostgreSQL; SQLite (one instance) has them empty.

Revision ID: 0018_gate_cluster
Revises: 0017_bodycam_instance
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)

revision = "0018_gate_cluster"
down_revision = "0017_bodycam_instance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gate_commands",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("lane_id", sa.String(length=64), nullable=False),
        sa.Column("bus", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("taken_by", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_gate_commands_bus", "gate_commands", ["bus"])
    op.create_table(
        "gate_states",
        sa.Column("lane_id", sa.String(length=64), primary_key=True),
        sa.Column("bus", sa.String(length=200), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gate_states")
    op.drop_index("ix_gate_commands_bus", table_name="gate_commands")
    op.drop_table("gate_commands")
