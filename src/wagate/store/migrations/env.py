"""Alembic environment: runs on the engine handed in by wagate.store.db.migrate."""

from __future__ import annotations

from alembic import context

from wagate.store.tables import metadata

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
