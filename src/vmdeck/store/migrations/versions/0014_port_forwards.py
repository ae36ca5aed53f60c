"""Port forwards and the quotas of networks and forwards (issue 24).

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-06

- `port_forwards`: a host address, protocol and port forwarded to a port of a VM's NIC on a vmdeck NAT
  network (vmdeck.store.forwards); the nftables rules are made from these rows. One forward per
  (address, proto, host_port). A forward belongs to the VM's project (NULL: a VM outside any project).
- `projects.max_networks`, `projects.max_forwards`: how many networks and forwards a project may have
  (NULL: no limit).
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "port_forwards",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=True,
                  index=True),
        sa.Column("vm", sa.String(200), nullable=False, index=True),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(17), nullable=False),
        sa.Column("address", sa.String(45), nullable=False),
        sa.Column("proto", sa.String(3), nullable=False),
        sa.Column("host_port", sa.Integer, nullable=False),
        sa.Column("guest_ip", sa.String(45), nullable=False),
        sa.Column("guest_port", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("address", "proto", "host_port", name="uq_port_forwards_host_port"),
    )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("max_networks", sa.Integer, nullable=True))
        batch.add_column(sa.Column("max_forwards", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("max_forwards")
        batch.drop_column("max_networks")
    op.drop_table("port_forwards")
