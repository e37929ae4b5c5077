"""The audit log (issue 14): who changed which device, binding, password, token or town
object, when, and its public fields before and after (secrets redacted).

Revision ID: 0012_audit
Revises: 0011_drones
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_audit"
down_revision = "0011_drones"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_token_id", sa.String(length=16), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_at", "audit", ["at"], unique=False)
    op.create_index("ix_audit_actor", "audit", ["actor"], unique=False)
    op.create_index("ix_audit_kind_key", "audit", ["kind", "key"], unique=False)
    op.create_index("ix_audit_actor_token", "audit", ["actor_token_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_actor_token", table_name="audit")
    op.drop_index("ix_audit_kind_key", table_name="audit")
    op.drop_index("ix_audit_actor", table_name="audit")
    op.drop_index("ix_audit_at", table_name="audit")
    op.drop_table("audit")
