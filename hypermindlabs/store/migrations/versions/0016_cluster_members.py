"""Rollups: the ``tag`` cube keeps a failed run's root-cause cluster as a member (``cluster``).

No table changes: member rows are what the rollups hold, so this revision only marks them as
changed — the composition root (hypermindlabs.wiring, ``ROLLUPS_REVISION``) recomputes every cell
from the stored events when it applied this revision. Regression attribution then counts failed
runs per cluster (and per tag value) from the cube instead of reading raw runs.

Revision ID: 0016
Revises: 0013
"""

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    # The cluster member rows are harmless to the older code (it filters the tag cube by tag
    # key); ``hypermind-obs rebuild-rollups`` of that version drops them.
    pass
