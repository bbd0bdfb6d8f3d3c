"""Leaner event indexes, each serving a query that exists (docs/performance.md, "Indexes").

The run list and its drill-downs read only run events, so their time and dimension indexes hold
only run events (partial, ``kind = 'run'``): about one row in twelve. The per-run index carries
``kind`` and ``tool`` so the list's tool-call count and the ``tool=`` filter are answered from the
listed run's own index entries (no table reads), instead of walking every tool event by time.
Step events are never filtered by kind and dimension in SQL (the rollups answer those), so the
``(kind, tool, start)`` index and the step rows of the others go. The cluster index holds only
clustered (failed) events. ``run_tags (key, value, run_id)`` is read by no query (tag filters
probe the primary key ``(run_id, key)`` of each listed run) and goes.

Revision ID: 0006
Revises: 0005
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_RUN: dict[str, Any] = {"sqlite_where": sa.text("kind = 'run'"), "postgresql_where": sa.text("kind = 'run'")}
_CLUSTERED: dict[str, Any] = {
    "sqlite_where": sa.text("cluster_id IS NOT NULL"),
    "postgresql_where": sa.text("cluster_id IS NOT NULL"),
}


def upgrade() -> None:
    op.drop_index("ix_events_run_start", table_name="events")
    op.create_index("ix_events_run_kind_tool", "events", ["run_id", "kind", "tool"])
    op.drop_index("ix_events_kind_start", table_name="events")
    op.create_index("ix_runs_start", "events", ["start_ns", "seq"], **_RUN)
    for dim in ("project", "model", "scenario"):
        op.drop_index(f"ix_events_kind_{dim}_start", table_name="events")
        op.create_index(f"ix_runs_{dim}_start", "events", [dim, "start_ns"], **_RUN)
    op.drop_index("ix_events_kind_tool_start", table_name="events")
    op.drop_index("ix_events_cluster_start", table_name="events")
    op.create_index("ix_events_cluster_start", "events", ["cluster_id", "start_ns"], **_CLUSTERED)
    op.drop_index("ix_run_tags_key_value", table_name="run_tags")


def downgrade() -> None:
    op.create_index("ix_run_tags_key_value", "run_tags", ["key", "value", "run_id"])
    op.drop_index("ix_events_cluster_start", table_name="events")
    op.create_index("ix_events_cluster_start", "events", ["cluster_id", "start_ns"])
    for dim in ("project", "model", "tool", "scenario"):
        if dim != "tool":
            op.drop_index(f"ix_runs_{dim}_start", table_name="events")
        op.create_index(f"ix_events_kind_{dim}_start", "events", ["kind", dim, "start_ns"])
    op.drop_index("ix_runs_start", table_name="events")
    op.create_index("ix_events_kind_start", "events", ["kind", "start_ns"])
    op.drop_index("ix_events_run_kind_tool", table_name="events")
    op.create_index("ix_events_run_start", "events", ["run_id", "start_ns"])
