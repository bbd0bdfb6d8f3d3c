"""A leaner store: event tags once per distinct set; ``run_tags`` without rowids on SQLite.

- ``tag_sets (id, digest, tags)``: each distinct ``events.tags`` JSON text once (``{}`` excepted),
  found by its SHA-256 (hex); ``events.tags`` becomes ``events.tag_set``, the set's id (NULL for
  ``{}``). Readers get the same text back (store/tag_sets.py). At 1M demo events the JSON was 34
  bytes per event, for a few hundred distinct sets.
- SQLite: ``run_tags`` is rebuilt ``WITHOUT ROWID``: the table is its primary key ``(run_id, key)``
  with the value, instead of a rowid table plus that key as a second b-tree; and without
  ``ix_run_tags_key_value (key, value, run_id)``, which no SQLite query reads (every tag filter and
  the failure report's tags probe a run's own tags by ``(run_id, key)``; migration 0007 restored
  it for PostgreSQL's semi-joins). PostgreSQL keeps its table and both indexes.

No rollup or exported series changes: nothing is recomputed.

Revision ID: 0020
Revises: 0018
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None

_RUN_TAGS_COLUMNS = "run_id VARCHAR(128) NOT NULL, \"key\" VARCHAR(64) NOT NULL, value VARCHAR(256) NOT NULL"


def _rebuild_run_tags(without_rowid: bool) -> None:
    # (the key-led index only with the rowid table: PostgreSQL's semi-joins read it, SQLite never does)
    suffix = " WITHOUT ROWID" if without_rowid else ""
    op.execute(f'CREATE TABLE run_tags_0020 ({_RUN_TAGS_COLUMNS}, PRIMARY KEY (run_id, "key")){suffix}')
    op.execute(
        'INSERT INTO run_tags_0020 (run_id, "key", value) '
        'SELECT run_id, "key", value FROM run_tags ORDER BY run_id, "key"'
    )
    op.execute("DROP TABLE run_tags")  # and its indexes
    op.execute("ALTER TABLE run_tags_0020 RENAME TO run_tags")
    if not without_rowid:
        op.create_index("ix_run_tags_key_value", "run_tags", ["key", "value", "run_id"])


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.create_table(
        "tag_sets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("tags", sa.Text, nullable=False),
    )
    texts = bind.execute(sa.text("SELECT DISTINCT tags FROM events WHERE tags <> '{}' ORDER BY tags")).scalars().all()
    if texts:
        bind.execute(
            sa.text("INSERT INTO tag_sets (digest, tags) VALUES (:d, :t)"),
            [{"d": hashlib.sha256(t.encode()).hexdigest(), "t": t} for t in texts],
        )
    op.add_column("events", sa.Column("tag_set", sa.Integer))
    if sqlite:
        # A temporary index on the text: one probe per event (SQLite has no SHA-256 function).
        op.execute("CREATE INDEX tmp_tag_sets_tags ON tag_sets (tags)")
        op.execute(
            "UPDATE events SET tag_set = (SELECT id FROM tag_sets WHERE tag_sets.tags = events.tags) WHERE tags <> '{}'"
        )
        op.execute("DROP INDEX tmp_tag_sets_tags")
    else:
        op.execute(
            "UPDATE events SET tag_set = t.id FROM tag_sets t "
            "WHERE t.digest = encode(sha256(convert_to(events.tags, 'UTF8')), 'hex') AND events.tags <> '{}'"
        )
    op.execute("ALTER TABLE events DROP COLUMN tags")
    if sqlite:
        _rebuild_run_tags(without_rowid=True)


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        _rebuild_run_tags(without_rowid=False)
    op.add_column("events", sa.Column("tags", sa.Text, nullable=False, server_default="{}"))
    op.execute(
        "UPDATE events SET tags = (SELECT t.tags FROM tag_sets t WHERE t.id = events.tag_set) WHERE tag_set IS NOT NULL"
    )
    if not sqlite:  # SQLite cannot drop a column default: there it stays
        op.execute("ALTER TABLE events ALTER COLUMN tags DROP DEFAULT")
    op.execute("ALTER TABLE events DROP COLUMN tag_set")
    op.drop_table("tag_sets")
