"""Alembic migrations of the web database (run by vmdeck.store.db.open_database)."""
