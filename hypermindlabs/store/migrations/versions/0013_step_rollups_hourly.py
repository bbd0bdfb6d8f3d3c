"""Rollups: the step level's any-filter cube (``full``) kept per hour instead of per minute.

At minutes it held about one cell per step fact (42 % of all cells at 1M events); step answers are
now widened to whole quarters (hours when only that cube answers them). The table keeps its
layout, but its cells are derived data laid out by the cube definitions: they are emptied here
and the composition root (hypermindlabs.wiring, ``ROLLUPS_REVISION``) recomputes every cell from
the stored events when it applied this revision, on SQLite and PostgreSQL alike.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM rollup_cells")


def downgrade() -> None:
    # The older layout is recomputed by ``hypermind-obs rebuild-rollups`` of that version.
    op.execute("DELETE FROM rollup_cells")
