"""Rollups: a run cube of whole tag sets (``tags``, hours and days); the run list's class and cluster paths.

- **Layout change of the rollups**: the run level gains the ``tags`` cube (code 8, every tag of a
  run without its tools, hypermindlabs.rollups.facts.CUBES). A query on two or more tags read the
  ``full`` cube's minute cells, about one per run (103,000 for 24 h at 10M events, 330 ms); it now
  reads hours and days of tag combinations, and ``full`` minutes at its window's edges only. The
  tables keep their layout; the composition root (hypermindlabs.wiring, ``ROLLUPS_REVISION``)
  recomputes every cell from the stored events when it applied this revision (38 s at 1M events
  on SQLite).
- ``ix_runs_class_start (failure_class, start_ns) WHERE kind = 'run' AND failure_class IS NOT
  NULL``: a drill-down by error class (``/api/v1/runs?error_class=…``, every error-class row of a
  summary) walks that class's runs newest first. It walked every run of the window by
  ``ix_runs_start`` and read each one's row for its class (a rare class: the whole window).
- ``ix_runs_cluster_failed (cluster_id, start_ns) WHERE kind = 'run' AND status = 'error'`` and
  ``ix_steps_cluster_run (cluster_id, run_id, kind) WHERE kind <> 'run' AND cluster_id IS NOT NULL``:
  the run list's ``cluster`` filter reads the cluster's failed runs and its steps' run ids from
  them (through ``ix_events_cluster_start`` it read every clustered event's row for its kind,
  status and run).

Revision ID: 0018
Revises: 0017
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_CLASSIFIED: dict[str, Any] = {
    "sqlite_where": sa.text("kind = 'run' AND failure_class IS NOT NULL"),
    "postgresql_where": sa.text("kind = 'run' AND failure_class IS NOT NULL"),
}


_FAILED: dict[str, Any] = {
    "sqlite_where": sa.text("kind = 'run' AND status = 'error'"),
    "postgresql_where": sa.text("kind = 'run' AND status = 'error'"),
}
_CLUSTERED_STEPS: dict[str, Any] = {
    "sqlite_where": sa.text("kind <> 'run' AND cluster_id IS NOT NULL"),
    "postgresql_where": sa.text("kind <> 'run' AND cluster_id IS NOT NULL"),
}


def upgrade() -> None:
    op.create_index("ix_runs_class_start", "events", ["failure_class", "start_ns"], **_CLASSIFIED)
    op.create_index("ix_runs_cluster_failed", "events", ["cluster_id", "start_ns"], **_FAILED)
    op.create_index("ix_steps_cluster_run", "events", ["cluster_id", "run_id", "kind"], **_CLUSTERED_STEPS)
    op.execute("DELETE FROM rollup_cells")


def downgrade() -> None:
    op.drop_index("ix_steps_cluster_run", table_name="events")
    op.drop_index("ix_runs_cluster_failed", table_name="events")
    op.drop_index("ix_runs_class_start", table_name="events")
    # The older layout (no ``tags`` cube) is recomputed by ``hypermind-obs rebuild-rollups`` of
    # that version; its reads never name the new cube's part.
    op.execute("DELETE FROM rollup_cells")
