"""Networks a project may use (issue 19, finding 5).

Revision ID: 0010
Revises: 0004_fleet
Create Date: 2026-12-06

- `project_networks`: the libvirt networks an administrator allowed a project's VMs on. Until
  projects own networks, a tenant may put a NIC on QEMU's user network and on these only
  (vmdeck.store.tenancy.Tenancy.check_networks); administrators on any.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_networks",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("network", sa.String(64), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("project_networks")
