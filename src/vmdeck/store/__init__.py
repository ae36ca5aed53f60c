"""The control plane's state (below cli/ and api/): accounts, projects, memberships, quotas and their
claims, tokens, sessions, the host registry and the audit log, in one SQLAlchemy database whose schema
is owned by the Alembic migrations in store/migrations."""
