"""Alembic environment for vmdeck's database: migrations run on the engine (or connection) the store opened."""

from __future__ import annotations

import contextlib

from alembic import context

from vmdeck.store.db import Base

given = context.config.attributes.get("connection")
with contextlib.ExitStack() as stack:
    # A connection handed in (PostgreSQL: the one holding the migration lock) commits when the store says.
    connection = given if given is not None else stack.enter_context(context.config.attributes["engine"].begin())
    # render_as_batch: SQLite alters tables by copying them; Alembic's batch mode does that for us
    # (vmdeck.store.db runs it with SQLite's foreign keys off, so the copy cascades nowhere).
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
