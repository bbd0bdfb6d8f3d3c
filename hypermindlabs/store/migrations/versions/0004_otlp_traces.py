"""OTLP ingest state: which run each trace is stored under, and spans that fit no kind awaiting their run.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "otlp_traces",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("first_seen_ns", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
        sa.Column("template", sa.Text, nullable=False),
    )
    op.create_index("ix_otlp_traces_state_seen", "otlp_traces", ["state", "last_seen_ns"])
    op.create_table(
        "otlp_held_spans",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("span_id", sa.String(16), primary_key=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("received_ns", sa.BigInteger, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("otlp_held_spans")
    op.drop_index("ix_otlp_traces_state_seen", "otlp_traces")
    op.drop_table("otlp_traces")
