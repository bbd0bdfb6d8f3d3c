"""Rollups: the run ``total`` and ``core`` cubes kept per minute too (issue #10, growth 1M → 10M).

**Layout change of the rollups** (hypermindlabs.rollups.facts.CUBES): a window's minute edges (a
summary of "the last 24 hours" starts and ends mid-quarter) and a 1-minute timeseries were read
from the run ``full`` cube's minute cells, about one per run, so their cost grew with the events
of those minutes (an hour of them is ~3,700 cells at 10M demo events). ``total`` and ``core``
minutes hold a cell per slice (status × failure class, and project × scenario × model for
``core``) and minute: a query without tag or tool conditions reads those instead. Each run
writes two more cells (``core``'s minutes were dropped again by 0022). The tables keep their
layout; the composition root (hypermindlabs.wiring, ``ROLLUPS_REVISION``) recomputes every cell
from the stored events when it applied this revision.

Revision ID: 0021
Revises: 0020
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM rollup_cells")


def downgrade() -> None:
    # The older layout (no minute cells of ``total`` and ``core``) is recomputed by
    # ``hypermind-obs rebuild-rollups`` of that version; its reads never name those tiers.
    op.execute("DELETE FROM rollup_cells")
