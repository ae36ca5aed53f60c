"""Host registry (issue 11): the libvirt hosts one vmdeck manages, with `local` registered.

Revision ID: 0002_hosts
Revises: 0001
Create Date: 2026-11-26

The CLI of that time wrote the registry without the API's database layer (it created the same table
with CREATE TABLE IF NOT EXISTS on a database `vmdeck serve` never opened), so this migration creates
the table only where it is missing, and keeps the rows it finds.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_hosts"
down_revision = "0002"  # after tenancy
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "hosts" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "hosts",
            sa.Column("name", sa.String(64), primary_key=True),
            # NULL: the default local connection (qemu:///system).
            sa.Column("uri", sa.String(1024), nullable=True),
            sa.Column("vcpu_ratio", sa.Float, nullable=False, server_default="4.0"),
            sa.Column("reserve_mib", sa.Integer, nullable=False, server_default="512"),
            sa.Column("draining", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("added_at", sa.Float, nullable=False, server_default="0"),
        )
        # Bound values, not SQL literals: a boolean is 0 in SQLite and false in PostgreSQL.
        op.get_bind().execute(sa.text("INSERT INTO hosts (name, uri, vcpu_ratio, reserve_mib, draining, added_at) "
                                      "VALUES ('local', NULL, 4.0, 512, :no, 0)"), {"no": False})


def downgrade() -> None:
    op.drop_table("hosts")
