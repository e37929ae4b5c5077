"""Devices keep the battery level a LoRaWAN network server reports (ChirpStack status events).

A status event reports the battery in percent, not millivolts, so it gets its own column.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("battery_pct", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("battery_pct")
