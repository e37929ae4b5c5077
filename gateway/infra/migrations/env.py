"""Alembic environment: always called with a live connection from gateway.infra.storage.db."""

from __future__ import annotations

from alembic import context

from gateway.infra.storage.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through gateway.infra.storage.db.migrate (citygate db upgrade)"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
