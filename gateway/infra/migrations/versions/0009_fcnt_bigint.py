"""A berth's last frame counter is 64-bit: LoRaWAN frame counters are 32-bit unsigned.

An uplink with fCnt above 2^31 - 1 did not fit PostgreSQL's integer: the berth's state could
not be written (it was refused as a row, counted, and kept in memory only). And a plate read's
colour holds ``yellow_green`` (new-energy lorry plates), which did not fit 8 characters.

Revision ID: 0009_fcnt_bigint
Revises: 0008_lanes
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_fcnt_bigint"
down_revision = "0008_lanes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("berths") as batch:
        batch.alter_column("last_fcnt", type_=sa.BigInteger(), existing_nullable=True)
    with op.batch_alter_table("plate_reads") as batch:
        batch.alter_column("colour", type_=sa.String(16), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("plate_reads") as batch:
        batch.alter_column("colour", type_=sa.String(8), existing_nullable=True)
    with op.batch_alter_table("berths") as batch:
        batch.alter_column("last_fcnt", type_=sa.Integer(), existing_nullable=True)
