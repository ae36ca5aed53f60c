"""API token scopes: a token limited to some kinds of calls, such as a Prometheus server's "metrics".

Revision ID: 0011
Revises: 0004_fleet
Create Date: 2026-12-06

`api_tokens.scopes`: NULL for a token that may do whatever its project and role allow (every token
made before); otherwise a comma-separated list of scopes ("metrics": GET /metrics and the history
API only, vmdeck.api.policy.SCOPES).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("scopes", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("scopes")
