"""Regression attribution: the ``tag`` cube keeps a failed run's root-cause cluster as a member
(``cluster``); two partial indexes of run events for the selections of member slices.

- Member rows are what the rollups hold, so this revision marks them as changed: the composition
  root (hypermindlabs.wiring, ``ROLLUPS_REVISION``) recomputes every cell from the stored events
  when it applied this revision. Attribution then counts failed runs per cluster (and per tag
  value) of a slice of run dimensions from the cube instead of reading raw runs.
- ``ix_runs_failed_start``: failed runs by start, so a tool or tag slice's failing runs are read
  from the window's failures, not from all its runs; ``ix_runs_start_end``: runs by start with
  their end, so its slow runs are found in the index and only they are looked up.

Revision ID: 0016
Revises: 0013
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None

# Partial on end > start (every run lasting any time): a slow-run query states it, so SQLite uses
# this index for it and keeps ix_runs_failed_start for failed-run queries.
_TIMED: dict[str, Any] = {
    "sqlite_where": sa.text("kind = 'run' AND end_ns > start_ns"),
    "postgresql_where": sa.text("kind = 'run' AND end_ns > start_ns"),
}
_FAILED: dict[str, Any] = {
    "sqlite_where": sa.text("kind = 'run' AND status = 'error'"),
    "postgresql_where": sa.text("kind = 'run' AND status = 'error'"),
}


def upgrade() -> None:
    op.create_index("ix_runs_failed_start", "events", ["start_ns"], **_FAILED)
    op.create_index("ix_runs_start_end", "events", ["start_ns", "end_ns"], **_TIMED)


def downgrade() -> None:
    # The cluster member rows are harmless to the older code (it filters the tag cube by tag
    # key); ``hypermind-obs rebuild-rollups`` of that version drops them.
    op.drop_index("ix_runs_start_end", table_name="events")
    op.drop_index("ix_runs_failed_start", table_name="events")
