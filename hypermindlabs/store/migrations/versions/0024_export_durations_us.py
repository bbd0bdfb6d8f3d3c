"""Exported series: durations stored in microseconds, not nanoseconds.

A duration histogram's sum (slot -1) is a cumulative 64-bit integer per series. In nanoseconds it
passed 2^63 after 292 runs of the longest allowed duration (366 days) under one label set, or
about 150 days of a million one-minute runs a day; from then on every batch that touched the series
failed with a 500 (SQLite "Python int too large to convert to SQLite INTEGER", PostgreSQL "bigint
out of range"). In microseconds the horizon is 2^63 µs, 292,000 years of summed duration.

In place: each duration sum and exemplar value is divided by 1,000, rounded to the nearest
microsecond (halves up, as ``export.facts`` rounds each observation). Bucket counts are unchanged.
A sum converted here may differ from a rebuild's by under 1 µs per converted row (a rebuild rounds
each run, this rounds their total); ``hypermind-obs rebuild-rollups`` makes them equal.

Revision ID: 0024
Revises: 0023
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_DURATIONS = "('gen_ai.client.operation.duration', 'hypermind.agent.run.duration')"


def upgrade() -> None:
    # (v + 500) / 1000 with integer division; v >= 0 (durations are never negative).
    op.execute(f"UPDATE export_series SET value = (value + 500) / 1000 WHERE slot = -1 AND metric IN {_DURATIONS}")
    op.execute(f"UPDATE export_series SET ex_value = (ex_value + 500) / 1000 "
               f"WHERE ex_value IS NOT NULL AND metric IN {_DURATIONS}")  # fmt: skip


def downgrade() -> None:
    # Sums past 2^63 ns cannot go back: rebuild the rollups (``hypermind-obs rebuild-rollups``) after.
    op.execute(f"UPDATE export_series SET value = value * 1000 WHERE slot = -1 AND metric IN {_DURATIONS}")
    op.execute(f"UPDATE export_series SET ex_value = ex_value * 1000 "
               f"WHERE ex_value IS NOT NULL AND metric IN {_DURATIONS}")  # fmt: skip
