"""Quotas across hosts and placement reservations (issue 11).

Revision ID: 0004_fleet
Revises: 0002_hosts
Create Date: 2026-11-26

- `host_usage`: a project's use on a host at its last successful count, so a host that is briefly
  unreachable still counts toward the project's quotas (vmdeck.store.quota).
- `hosts_counted`: when each host was last counted, and which projects had VMs there then.
- `placements`: a create's claim on a host's memory and vCPUs from the placement decision until the
  VM runs or the create ends (vmdeck.cluster.pending). The CLI of that time created this table itself
  when the server never ran (CREATE TABLE IF NOT EXISTS, the same columns), so it is made only where missing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_fleet"
down_revision = "0002_hosts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "host_usage",
        # Keyed by the libvirt URI, not the registry name: a host removed and added again under another
        # name is the same libvirtd with the same VMs.
        sa.Column("uri", sa.String(1024), primary_key=True),
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(64), nullable=False),  # the registry name at the time, for messages
        sa.Column("instances", sa.Integer, nullable=False),
        sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("memory_mib", sa.Integer, nullable=False),
        sa.Column("disk_gib", sa.Float, nullable=False),
        sa.Column("vms", sa.Text, nullable=False),  # JSON list of names
        sa.Column("counted_at", sa.Float, nullable=False),
    )
    op.create_table(
        "hosts_counted",
        sa.Column("uri", sa.String(1024), primary_key=True),
        sa.Column("projects", sa.Text, nullable=False),  # JSON list: projects with a VM there
        sa.Column("counted_at", sa.Float, nullable=False),
    )
    if "placements" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "placements",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("host", sa.String(64), nullable=False),
            sa.Column("vm", sa.String(200), nullable=False),
            sa.Column("vcpus", sa.Integer, nullable=False),
            sa.Column("memory_mib", sa.Integer, nullable=False),
            sa.Column("owner", sa.String(64), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("placements")
    op.drop_table("hosts_counted")
    op.drop_table("host_usage")
