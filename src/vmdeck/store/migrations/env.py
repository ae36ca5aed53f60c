"""Alembic environment for vmdeck's web database: migrations run on the engine the app opened."""

from __future__ import annotations

from alembic import context

from vmdeck.store.db import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    # render_as_batch: SQLite alters tables by copying them; Alembic's batch mode does that for us.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
