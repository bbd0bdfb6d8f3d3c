"""The admitted values of capped metric labels (``label_admissions``), shared by every process.

Admission is conditional on the label's budget and runs serialized per label (SQLite: the single
writer lock the INSERT takes; PostgreSQL: an advisory transaction lock per label), so the table
never holds more than the budget and every process reading it back agrees on the admitted set.
The policy (budgets, folding, caching) is :mod:`hypermindlabs.export.cardinality`'s.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from hypermindlabs.store.dialect import advisory_xact_lock, lock_key

__all__ = ["LabelAdmissions"]

# The same statements on SQLite and PostgreSQL.
_INSERT = text(
    "INSERT INTO label_admissions (label, value, admitted_ns) "
    "SELECT CAST(:label AS VARCHAR(64)), CAST(:value AS VARCHAR(256)), CAST(:now AS BIGINT) "
    "WHERE (SELECT count(*) FROM label_admissions WHERE label = CAST(:label AS VARCHAR(64))) < :budget "
    "ON CONFLICT (label, value) DO NOTHING"
)
_ADMITTED = text(
    "SELECT value FROM label_admissions WHERE label = :label ORDER BY admitted_ns, value LIMIT :budget"
)
_ALL = text("SELECT label, value FROM label_admissions ORDER BY label, admitted_ns, value")


class LabelAdmissions:
    """Reads and admits label values in the store's database (the table is migration 0002's)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def admit(self, label: str, value: str, *, now_ns: int, budget: int) -> set[str]:
        """Admit ``value`` if ``label`` is under ``budget``; the admitted set after this call."""
        params = {"label": label, "value": value, "now": now_ns, "budget": budget}
        with self._engine.begin() as conn:
            advisory_xact_lock(conn, lock_key(f"hypermind.label_admissions:{label}"))
            conn.execute(_INSERT, params)
            return set(conn.execute(_ADMITTED, {"label": label, "budget": budget}).scalars())

    def all(self) -> list[tuple[str, str]]:
        """Every admitted (label, value), oldest first per label."""
        with self._engine.connect() as conn:
            return [(row[0], row[1]) for row in conn.execute(_ALL)]
