"""Admitted label values, so Prometheus label caps are stable across restarts and processes.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_admissions",
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), primary_key=True),
        sa.Column("admitted_ns", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("label_admissions")
