"""Indexes the failure-clusters report reads instead of the events table.

The report reads a window's failed runs and its runs' failed, clustered steps. It walked the
window's runs by ``ix_runs_start`` and fetched every run's table row for its status, then every
step's row through ``ix_events_run_kind_tool`` for its status and labels, error text included
(2.8 s of SQLite's 3 s at 1M events, 126,000 runs and 1M rows touched for 18,000 returned).

- ``ix_runs_start_outcome (start_ns, status, run_id, model, scenario) WHERE kind = 'run'``: the
  runs of a window with their outcome and dimensions, from the index alone;
- ``ix_events_failed_cluster (run_id, kind, cluster_id, failure_class, tool, model, seq)
  WHERE status = 'error' AND cluster_id IS NOT NULL``: a run's failed, clustered events with
  their labels, from the index alone. The error texts are read by ``seq`` for one example per
  cluster only.

Revision ID: 0015
Revises: 0016
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0016"
branch_labels = None
depends_on = None

_RUN: dict[str, Any] = {"sqlite_where": sa.text("kind = 'run'"), "postgresql_where": sa.text("kind = 'run'")}
_FAILED: dict[str, Any] = {
    "sqlite_where": sa.text("status = 'error' AND cluster_id IS NOT NULL"),
    "postgresql_where": sa.text("status = 'error' AND cluster_id IS NOT NULL"),
}


def upgrade() -> None:
    op.create_index("ix_runs_start_outcome", "events", ["start_ns", "status", "run_id", "model", "scenario"], **_RUN)
    op.create_index(
        "ix_events_failed_cluster", "events",
        ["run_id", "kind", "cluster_id", "failure_class", "tool", "model", "seq"], **_FAILED,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_events_failed_cluster", table_name="events")
    op.drop_index("ix_runs_start_outcome", table_name="events")
