"""Alerts delivered by Alertmanager's webhook (POST /api/v1/alerts): one row per fingerprint.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alertname", sa.String(256), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("annotations", sa.Text, nullable=False),
        sa.Column("starts_at_ns", sa.BigInteger, nullable=False),
        sa.Column("ends_at_ns", sa.BigInteger),
        sa.Column("generator_url", sa.Text, nullable=False),
        sa.Column("receiver", sa.String(256), nullable=False),
        sa.Column("received_at_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alerts_status_starts", "alerts", ["status", "starts_at_ns"])


def downgrade() -> None:
    op.drop_index("ix_alerts_status_starts", "alerts")
    op.drop_table("alerts")
