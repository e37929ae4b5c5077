"""One lifecycle for every kind of device (issue 14): a lane's gate controller carries its own
lifecycle (``lanes.gate_lifecycle``: the controller is named by its lane's id, and a lane
row is the controller's record), and every kind stores the same state names (provisioned,
commissioned, active, maintenance, retired; ``gateway.directory.lifecycle``).

Existing rows keep their meaning: devices, chargers, body cams and drones already store
names of that set (``active`` stays active, ``retired`` stays retired); existing gates were
driven as working gates, so they are ``active``.

Revision ID: 0013_lifecycle
Revises: 0012_audit
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_lifecycle"
down_revision = "0012_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lanes") as batch:
        batch.add_column(
            sa.Column(
                "gate_lifecycle", sa.String(length=16), nullable=False, server_default="active"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("lanes") as batch:
        batch.drop_column("gate_lifecycle")
