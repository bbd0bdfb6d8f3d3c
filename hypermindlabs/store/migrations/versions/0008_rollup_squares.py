"""Rollups: per-run sums of squares of tokens and tool calls (variance for the regressions' tests).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollup_cells", sa.Column("tokens_sq", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("rollup_cells", sa.Column("tool_calls_sq", sa.BigInteger, nullable=False, server_default="0"))
    # Rollups are derived data: the composition root (hypermindlabs.wiring) recomputes them from the
    # events when it applied this revision, so the new measures are filled for stored runs too.


def downgrade() -> None:
    with op.batch_alter_table("rollup_cells") as batch:
        batch.drop_column("tool_calls_sq")
        batch.drop_column("tokens_sq")
