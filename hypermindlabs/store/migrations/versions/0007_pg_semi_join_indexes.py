"""Indexes PostgreSQL's planner needs for the run list's ``tool=`` and ``tag.<key>=`` filters.

PostgreSQL turns those EXISTS filters into semi-joins; without an index led by the filtered
value it hashes a sequential scan of ``events`` (``tool=``) or ``run_tags`` (tags), which grows
with the database (EXPLAIN in docs/performance.md). ``(tool, run_id) WHERE tool IS NOT NULL``
holds only tool-carrying events; ``run_tags (key, value, run_id)`` (dropped by 0006, read by no
SQLite plan) comes back for PostgreSQL's join.

Revision ID: 0007
Revises: 0006
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TOOL: dict[str, Any] = {
    "sqlite_where": sa.text("tool IS NOT NULL"),
    "postgresql_where": sa.text("tool IS NOT NULL"),
}


def upgrade() -> None:
    op.create_index("ix_events_tool_run", "events", ["tool", "run_id"], **_TOOL)
    op.create_index("ix_run_tags_key_value", "run_tags", ["key", "value", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_tags_key_value", table_name="run_tags")
    op.drop_index("ix_events_tool_run", table_name="events")
