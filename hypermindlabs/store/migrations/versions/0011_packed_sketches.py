"""Rollups: one cell per (part, tier, bucket, slice) with its latency sketch packed in a column.

Before, the sketch's bin was part of the cell key (a row per latency bin per bucket and slice), so
the table grew with events. Cells are derived data: the table is recreated empty here and the
composition root (hypermindlabs.wiring, ``ROLLUPS_REVISION``) recomputes every cell from the
stored events when it applied this revision, on SQLite and PostgreSQL alike.

Revision ID: 0011
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

_MEASURES = (
    "n", "duration_us", "input_tokens", "output_tokens", "input_tokens_proxy", "output_tokens_proxy",
    "tool_calls", "llm_calls", "tokens_sq", "tool_calls_sq",
)  # fmt: skip
_KEY = ("part", "tier", "bucket_ns", "slice_id")


def _create(with_bin: bool) -> None:
    types = {"part": sa.SmallInteger, "tier": sa.Integer, "bucket_ns": sa.BigInteger, "slice_id": sa.BigInteger}
    key = [sa.Column(k, types[k], primary_key=True, autoincrement=False) for k in _KEY]
    if with_bin:
        key.append(sa.Column("bin", sa.Integer, primary_key=True, autoincrement=False))
    op.create_table(
        "rollup_cells",
        *key,
        *(sa.Column(m, sa.BigInteger, nullable=False) for m in _MEASURES),
        *([] if with_bin else [sa.Column("sketch", sa.LargeBinary, nullable=False)]),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    op.drop_table("rollup_cells")
    _create(with_bin=False)


def downgrade() -> None:
    # Back to a row per bin; the cells are then rebuilt by ``hypermind-obs rebuild-rollups``
    # of that version.
    op.drop_table("rollup_cells")
    _create(with_bin=True)
