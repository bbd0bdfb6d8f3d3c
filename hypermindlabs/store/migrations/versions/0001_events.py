"""Run events and run tags.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("parent_span_id", sa.String(16)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("project", sa.String(256)),
        sa.Column("model", sa.String(256)),
        sa.Column("tool", sa.String(256)),
        sa.Column("scenario", sa.String(256)),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("input_chars", sa.BigInteger),
        sa.Column("output_chars", sa.BigInteger),
        sa.Column("tokens_estimated", sa.Boolean, nullable=False),
        sa.Column("error_type", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("error_class", sa.String(64)),
        sa.Column("failure_class", sa.String(64)),
        sa.Column("cluster_id", sa.String(32)),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
    )
    # A run ID is immutable: at most one run event per run_id, enforced by the database too.
    op.create_index(
        "uq_events_run_event", "events", ["run_id"], unique=True,
        sqlite_where=sa.text("kind = 'run'"), postgresql_where=sa.text("kind = 'run'"),
    )  # fmt: skip
    # Trace lookup and inheritance updates.
    op.create_index("ix_events_run_start", "events", ["run_id", "start_ns"])
    # Time range + dimension filters (run list, step slices), newest first.
    op.create_index("ix_events_kind_start", "events", ["kind", "start_ns"])
    for dim in ("project", "model", "tool", "scenario"):
        op.create_index(f"ix_events_kind_{dim}_start", "events", ["kind", dim, "start_ns"])
    op.create_index("ix_events_cluster_start", "events", ["cluster_id", "start_ns"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_index("ix_run_tags_key_value", "run_tags", ["key", "value", "run_id"])


def downgrade() -> None:
    op.drop_table("run_tags")
    op.drop_table("events")
