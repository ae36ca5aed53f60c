"""Tasks: every long operation (create, start --wait, snapshot, clone, upload, import, migrate, image
build, backup, restore) recorded with its progress, outcome and a short log (issue 20).

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-06

- `tasks`: one row per operation: what (kind, target, VM, project), who (user, origin), its state
  (queued, running, done, failed, cancelled), progress (done of total, when known), when it started and
  ended, its result or error line, the last lines of its log, and the process running it (`owner`,
  vmdeck.store.lease's form) so a server that died leaves no task "running" forever.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("vm", sa.String(200), nullable=True),
        sa.Column("project", sa.String(64), nullable=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("done", sa.BigInteger, nullable=True),
        sa.Column("total", sa.BigInteger, nullable=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime, nullable=True),
        sa.Column("updated", sa.Float, nullable=False),
        sa.Column("result", sa.String(300), nullable=True),
        sa.Column("log", sa.Text, nullable=False, server_default=""),
        sa.Column("owner", sa.String(200), nullable=False, server_default=""),
    )
    op.create_index("ix_tasks_project", "tasks", ["project"])
    op.create_index("ix_tasks_state", "tasks", ["state"])
    op.create_index("ix_tasks_updated", "tasks", ["updated"])


def downgrade() -> None:
    op.drop_table("tasks")
