"""Regression attribution of member slices: the selections' run filters read from the index.

A tool or tag slice's failing or slow runs (store/regression_facets.py, ``selected_runs``) were
found through ``ix_runs_failed_start (start_ns)`` and ``ix_runs_start_end (start_ns, end_ns)``
(0016), then every candidate's table row was read for its dimensions and ``run_id`` (the tool and
tag probes) — at 10M events a 7-day baseline's slow runs are over 200,000 rows read to keep a
thousand. These two replace them, with the run dimensions, the failure class and ``run_id`` in
the index, so only the selected runs' rows are read (their tags and cluster):

- ``ix_runs_failed_cover (start_ns, project, scenario, model, failure_class, run_id)
  WHERE kind = 'run' AND status = 'error'``;
- ``ix_runs_timed_cover (start_ns, end_ns, project, scenario, model, run_id)
  WHERE kind = 'run' AND end_ns > start_ns``.

Indexes only: no rollup recompute (wiring.ROLLUPS_REVISION stays 0016).

Revision ID: 0017
Revises: 0015
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None

_TIMED: dict[str, Any] = {
    "sqlite_where": sa.text("kind = 'run' AND end_ns > start_ns"),
    "postgresql_where": sa.text("kind = 'run' AND end_ns > start_ns"),
}
_FAILED: dict[str, Any] = {
    "sqlite_where": sa.text("kind = 'run' AND status = 'error'"),
    "postgresql_where": sa.text("kind = 'run' AND status = 'error'"),
}


def upgrade() -> None:
    op.create_index(
        "ix_runs_failed_cover", "events", ["start_ns", "project", "scenario", "model", "failure_class", "run_id"],
        **_FAILED,
    )  # fmt: skip
    op.create_index(
        "ix_runs_timed_cover", "events", ["start_ns", "end_ns", "project", "scenario", "model", "run_id"], **_TIMED
    )
    op.drop_index("ix_runs_start_end", table_name="events")
    op.drop_index("ix_runs_failed_start", table_name="events")


def downgrade() -> None:
    op.create_index("ix_runs_failed_start", "events", ["start_ns"], **_FAILED)
    op.create_index("ix_runs_start_end", "events", ["start_ns", "end_ns"], **_TIMED)
    op.drop_index("ix_runs_timed_cover", table_name="events")
    op.drop_index("ix_runs_failed_cover", table_name="events")
