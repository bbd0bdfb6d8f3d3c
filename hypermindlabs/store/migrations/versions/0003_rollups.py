"""Rollups: slices and their cells (measures per bucket and latency bin), rebuildable from events.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_MEASURES = (
    "n", "duration_us", "input_tokens", "output_tokens", "input_tokens_proxy", "output_tokens_proxy",
    "tool_calls", "llm_calls",
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "rollup_slices",
        sa.Column("slice_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("cube", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16)),
        sa.Column("project", sa.String(256)),
        sa.Column("scenario", sa.String(256)),
        sa.Column("model", sa.String(256)),
        sa.Column("tool", sa.String(256)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("failure_class", sa.String(64)),
        sa.Column("mkey", sa.String(80)),
        sa.Column("mvalue", sa.String(256)),
    )
    # Queries on the small cubes list their slices first (a few thousand at most).
    op.create_index("ix_rollup_slices_cube", "rollup_slices", ["level", "cube"])
    # Members are only looked up by slice id (their primary key): no (key, value) index, which
    # PostgreSQL would otherwise pick on fresh statistics and scan per slice.
    op.create_table(
        "rollup_slice_members",
        sa.Column("slice_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("value", sa.String(256), primary_key=True),
        sqlite_with_rowid=False,
    )
    # Cells are keyed by part (cube and step kind) and time first: a query reads its part's cells
    # in its window as one contiguous range (WITHOUT ROWID on SQLite stores rows in key order)
    # and looks each slice up by its primary key; ingest appends near the end of each range.
    op.create_table(
        "rollup_cells",
        sa.Column("part", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("tier", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("bucket_ns", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("slice_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("bin", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(m, sa.BigInteger, nullable=False) for m in _MEASURES),
        sqlite_with_rowid=False,
    )
    # Rollups are derived data: the composition root (hypermindlabs.wiring) fills them from the
    # events already stored when it applied this revision, so the store never imports rollups.


def downgrade() -> None:
    op.drop_table("rollup_cells")
    op.drop_table("rollup_slice_members")
    op.drop_table("rollup_slices")
