"""Body cams across several gateway instances (issue 16): which instance last wrote a cam's
``bodycam_state`` row (the one that heard it; the others mirror the row). Only set on
PostgreSQL; SQLite (one instance) leaves it empty.

Revision ID: 0017_bodycam_instance
Revises: 0016_site_count_seq
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_bodycam_instance"
down_revision = "0016_site_count_seq"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bodycam_state") as batch:
        batch.add_column(sa.Column("instance_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bodycam_state") as batch:
        batch.drop_column("instance_id")
