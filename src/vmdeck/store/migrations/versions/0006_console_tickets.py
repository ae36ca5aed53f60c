"""Console tickets in the database: a ticket one server issues opens the console on any server sharing it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Only the SHA-256 of a ticket is stored (like sessions and tokens); a ticket lives seconds and is spent
by the DELETE that redeems it (vmdeck.api.tickets).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_tickets",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("vm", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("console_tickets")
