"""Car-park lanes (camera + barrier gate controller) and the lane service's gate decisions.

Named 0008_lanes on purpose: the cameras part of issue 11 adds its own migration after 0006
at the same time; at merge one of the two is re-linked after the other (change
``down_revision`` here, or theirs to this one).

Revision ID: 0008_lanes
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_lanes"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lanes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("gate_bus", sa.String(length=200), nullable=False),
        sa.Column("gate_unit", sa.Integer(), nullable=False),
        sa.Column("gate_model", sa.String(length=64), nullable=False),
        sa.Column("display", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("camera_id", name="uq_lanes_camera"),
    )
    op.create_index("ix_lanes_site_id", "lanes", ["site_id"], unique=False)
    op.create_table(
        "lane_decisions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("lane_id", sa.String(length=64), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=True),
        sa.Column("session_id", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("operator", sa.String(length=16), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("done_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_lane_decisions_lane", "lane_decisions", ["lane_id", "created_at"], unique=False
    )
    op.create_index("ix_lane_decisions_state", "lane_decisions", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_lane_decisions_state", table_name="lane_decisions")
    op.drop_index("ix_lane_decisions_lane", table_name="lane_decisions")
    op.drop_table("lane_decisions")
    op.drop_index("ix_lanes_site_id", table_name="lanes")
    op.drop_table("lanes")
