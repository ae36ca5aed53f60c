"""One expiry rule for claims: a lease. Quota reservations and placement claims carry their owner and
an expiry the owner renews; a release records the claim's counter (`counters`) instead of deleting it.

Revision ID: 0005
Revises: 0004_fleet
Create Date: 2026-12-06

Before, a reservation expired after an hour and a placement claim when its process was gone (read from
/proc, which another server cannot read). Now both expire when their lease lapses (vmdeck.store.lease),
on every server alike. Rows from before this revision get no lease (expires_at 0): their creates ended
with the vmdeck that made them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004_fleet"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reservations") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("expires_at", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("released_seq", sa.Integer, nullable=True))
    with op.batch_alter_table("placements") as batch:
        batch.alter_column("owner", type_=sa.String(200), existing_type=sa.String(64), existing_nullable=False)
        batch.add_column(sa.Column("expires_at", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("released_seq", sa.Integer, nullable=True))
    op.create_table(
        "counters",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("counters")
    with op.batch_alter_table("placements") as batch:
        batch.drop_column("released_seq")
        batch.drop_column("expires_at")
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("released_seq")
        batch.drop_column("expires_at")
        batch.drop_column("owner")
