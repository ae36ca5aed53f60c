"""Backups: a project quota for backup storage, and backup schedules (issue 21).

Revision ID: 0008
Revises: 0004_fleet
Create Date: 2026-12-06

- `projects.max_backup_gib`: the most backup storage a project's backups may take in the
  repository (NULL: no limit). The repository's manifests are the catalogue: what a project
  uses is counted there, not kept here.
- `backup_schedules`: `vmdeck backup schedule VM --every 6h --keep N`, run by `vmdeck serve`
  and `vmdeck backup run-due`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("max_backup_gib", sa.Float, nullable=True))
    op.create_table(
        "backup_schedules",
        sa.Column("vm", sa.String(200), primary_key=True),
        sa.Column("uri", sa.String(1024), primary_key=True),  # the VM's host (libvirt URI)
        sa.Column("repo", sa.String(1024), nullable=True),  # NULL: the default repository
        sa.Column("every_s", sa.Integer, nullable=False),
        sa.Column("keep_last", sa.Integer, nullable=False),
        sa.Column("keep_daily", sa.Integer, nullable=False, server_default="0"),
        sa.Column("keep_weekly", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_run", sa.Float, nullable=True),
        sa.Column("last_result", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("backup_schedules")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("max_backup_gib")
