"""Console links: a console ticket may name the credential it was asked with.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

`vmdeck display` against a server prints a one-time URL of the VM's console (vmdeck.api.console_link).
Whoever opens it carries no session or token: the ticket keeps a reference to the credential that asked
for it ("token:ID" or "session:DIGEST", never the secret), so the console ends when that credential is
revoked, like any console.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("console_tickets") as batch:
        batch.add_column(sa.Column("credential", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("console_tickets") as batch:
        batch.drop_column("credential")
