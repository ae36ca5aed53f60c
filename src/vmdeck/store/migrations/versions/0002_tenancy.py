"""Tenancy: projects with quotas, memberships, scoped API tokens, quota reservations, ISO owners, audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        # NULL: no limit.
        sa.Column("max_instances", sa.Integer, nullable=True),
        sa.Column("max_vcpus", sa.Integer, nullable=True),
        sa.Column("max_memory_mib", sa.Integer, nullable=True),
        sa.Column("max_disk_gib", sa.Float, nullable=True),
        sa.Column("max_iso_gib", sa.Float, nullable=True),
    )
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("project_id", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_api_tokens_project", "projects", ["project_id"], ["id"], ondelete="CASCADE")
        batch.add_column(sa.Column("role", sa.String(16), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime, nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime, nullable=True))
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("what", sa.String(200), nullable=False),
        sa.Column("instances", sa.Integer, nullable=False, server_default="0"),
        sa.Column("vcpus", sa.Integer, nullable=False, server_default="0"),
        sa.Column("memory_mib", sa.Integer, nullable=False, server_default="0"),
        sa.Column("disk_gib", sa.Float, nullable=False, server_default="0"),
        sa.Column("iso_gib", sa.Float, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "isos",
        sa.Column("name", sa.String(160), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False, index=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("project", sa.String(64), nullable=True, index=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("vm", sa.String(128), nullable=True),
        sa.Column("target", sa.String(300), nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("result", sa.String(300), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_table("isos")
    op.drop_table("reservations")
    with op.batch_alter_table("api_tokens") as batch:
        for column in ("revoked_at", "expires_at", "role", "project_id"):
            batch.drop_column(column)
    op.drop_table("memberships")
    op.drop_table("projects")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled")
