"""Rollups: narrow cubes of one dimension or member; ``core`` without minutes (issue #10).

**Layout change of the rollups** (hypermindlabs.rollups.facts.CUBES):

- Run level: ``project`` (the project and the outcome), ``tool_only`` (a row per tool the run
  used; quarters and days) and ``tag_only`` (a row per tag, and the root-cause cluster) keep one
  dimension or member without the others; step level: ``model`` (with the step kind). A query grouped
  or filtered by that one dimension read the wide cube, whose slices multiply every dimension by
  status × failure class (at 10M demo events, 24 h of ``core`` quarters are 8,614 cells where
  the same answer by project needs 2,462).
- ``core`` keeps no minute cells any more (0021 added them): at 10M they were 2.2× fewer than
  the ``full`` minutes a window's edges read instead, at 1M not fewer, and they cost 7 bytes an
  event.

The tables keep their layout; the composition root (hypermindlabs.wiring, ``ROLLUPS_REVISION``)
recomputes every cell from the stored events when it applied this revision.

Revision ID: 0022
Revises: 0021
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM rollup_cells")


def downgrade() -> None:
    # The older layout is recomputed by ``hypermind-obs rebuild-rollups`` of that version; its
    # reads never name the new cubes' parts.
    op.execute("DELETE FROM rollup_cells")
