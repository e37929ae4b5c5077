"""Several instances deciding car-park counts (issue 16): the controller's last ``seq`` the
count was taken at is kept with the count, so an instance that takes the next count judges
a re-delivered one exactly as the instance that took it would have.

Revision ID: 0016_site_count_seq
Revises: 0015_charger_cluster
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_site_count_seq"
down_revision = "0015_charger_cluster"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("count_seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("count_seq")
