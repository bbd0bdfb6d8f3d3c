"""The exported-series view behind /metrics, and the windowed label admissions it is capped by.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_series",
        sa.Column("series_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("slot", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("metric", sa.String(96), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("ex_ts_ns", sa.BigInteger),
        sa.Column("ex_run_id", sa.String(128)),
        sa.Column("ex_trace_id", sa.String(32)),
        sa.Column("ex_value", sa.BigInteger),
    )
    op.create_table(
        "export_labels",
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), primary_key=True),
        sa.Column("admitted_ns", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("export_labels")
    op.drop_table("export_series")
