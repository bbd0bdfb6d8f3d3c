"""Rollups: the sums of squares (``tokens_sq``, ``tool_calls_sq``) as floating point.

As 64-bit integers they overflowed: one run of 3.04 billion tokens squares past 2^63 (its batch
failed with a 500, SQLite "Python int too large to convert to SQLite INTEGER", PostgreSQL "bigint
out of range"), and so do 92,000 runs of 10 million tokens in a day cell, after which every later
batch of that day failed. They feed a variance (the regressions' Welch test), where 53 bits are
plenty; below 2^53 a cell's sum is still exact. The other measures stay exact integers.

The cells are converted in place, no recompute: PostgreSQL ``ALTER COLUMN … TYPE double
precision``; SQLite recreates the table (``WITHOUT ROWID`` kept) with the two columns of ``REAL``
affinity, so its ``sum()`` adds them as floats and never fails with "integer overflow" (integral
values are still written to disk as integers, so the file does not grow).

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_SQUARES = ("tokens_sq", "tool_calls_sq")


def _retype(old: type[sa.types.TypeEngine], new: type[sa.types.TypeEngine], cast: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        for m in _SQUARES:
            op.alter_column("rollup_cells", m, type_=new, existing_type=old, existing_nullable=False,
                            postgresql_using=f"{m}::{cast}")  # fmt: skip
        return
    with op.batch_alter_table("rollup_cells", recreate="always", table_kwargs={"sqlite_with_rowid": False}) as batch:
        for m in _SQUARES:
            batch.alter_column(m, type_=new, existing_type=old, existing_nullable=False)


def upgrade() -> None:
    _retype(sa.BigInteger, sa.Double, "double precision")


def downgrade() -> None:
    # Sums past 2^63 cannot go back: rebuild the rollups (``hypermind-obs rebuild-rollups``) after.
    _retype(sa.Double, sa.BigInteger, "bigint")
