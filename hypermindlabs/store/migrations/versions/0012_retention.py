"""The retention watermark: raw events of runs started before it were pruned (``hypermind-obs prune``).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention",
        sa.Column("scope", sa.String(32), primary_key=True),
        sa.Column("pruned_before_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
        sa.Column("runs_pruned", sa.BigInteger, nullable=False),
        sa.Column("events_pruned", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention")
