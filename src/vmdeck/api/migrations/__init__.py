"""Alembic migrations of the web database (run by vmdeck.api.db.open_database)."""
