"""The town's streets (issue 15): centre lines from the town file's ``[[streets]]``, drawn on
the one map as the town's outline (no map tiles on the bureau's offline network).

Revision ID: 0014_streets
Revises: 0013_lifecycle
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_streets"
down_revision = "0013_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "streets",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("line", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("streets")
