"""Event tags stored once per distinct tag set (migration 0020).

Steps of a run, and most runs, carry the same few tag sets (``{"env": "prod", "release": "2.1.0"}``
on every step of a demo run: 34 bytes of JSON per event, 7 % of the store). ``tag_sets`` holds each
distinct set's JSON text once; an event row holds its set's small integer id in ``tag_set``, NULL
for no tags (``{}``). Readers never see the id: :func:`event_column` puts the JSON text back under
the name ``tags`` (a primary-key lookup per row), so every answer is the same text as before.

Ids are assigned in the append transaction, under the writers' lock on PostgreSQL (so concurrent
writers never race for one set) and SQLite's single writer. A set is found by the SHA-256 of its
text (PostgreSQL's b-tree cannot hold the longest sets as keys). Ids learnt by a transaction that
rolls back are never reused by the process: :class:`TagSets` keeps only committed ones. Sets are
never deleted (a pruned run's set stays: a few rows per distinct set, whatever the events).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from hypermindlabs.core.vocabulary import chunks
from hypermindlabs.store.schema import events, tag_sets

__all__ = ["EMPTY", "TagSets", "event_column", "event_columns", "tags_json"]

#: The tags of an event with none: stored as a NULL ``tag_set``.
EMPTY = "{}"


def tags_json(t: Any) -> Any:
    """The ``tags`` JSON text of the rows of ``t`` (``events`` or an alias of it), labelled ``tags``."""
    text = select(tag_sets.c.tags).where(tag_sets.c.id == t.c.tag_set).scalar_subquery()
    return func.coalesce(text, EMPTY).label("tags")


def event_column(t: Any, name: str) -> Any:
    """Column ``name`` of the event rows of ``t``, ``tags`` included (rebuilt from ``tag_set``)."""
    return tags_json(t) if name == "tags" else t.c[name]


def event_columns(t: Any = events) -> list[Any]:
    """Every column of a stored event (``select(events)`` as it read before 0020: ``tags`` as JSON text)."""
    return [tags_json(t) if c.name == "tag_set" else c for c in t.c]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class TagSets:
    """The committed tag set ids of one database, cached; new sets are added in the writer's transaction."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def ids(self, conn: Connection, texts: Iterable[str], learnt: dict[str, int]) -> dict[str, int]:
        """The id of each tag set text (not ``{}``), adding the new ones; ``learnt`` gets the ids
        this transaction read or added, for :meth:`commit` once it committed."""
        out: dict[str, int] = {}
        need: list[str] = []
        known = self._ids
        for t in dict.fromkeys(texts):
            got = known.get(t)
            if got is None:
                got = learnt.get(t)
            if got is None:
                need.append(t)
            else:
                out[t] = got
        if need:
            found = self._read(conn, need)
            new = [t for t in need if t not in found]
            if new:
                # One writer at a time (SQLite; the writers' lock on PostgreSQL): no other
                # transaction can add these between the read and the insert.
                conn.execute(tag_sets.insert(), [{"digest": _digest(t), "tags": t} for t in new])
                found.update(self._read(conn, new))
            out.update(found)
            learnt.update(found)
        return out

    def commit(self, learnt: dict[str, int]) -> None:
        """Keep the ids of a committed transaction."""
        if learnt:
            with self._lock:
                self._ids.update(learnt)

    @staticmethod
    def _read(conn: Connection, texts: Sequence[str]) -> dict[str, int]:
        by_digest = {_digest(t): t for t in texts}
        out: dict[str, int] = {}
        for chunk in chunks(list(by_digest)):
            q = select(tag_sets.c.digest, tag_sets.c.id, tag_sets.c.tags).where(tag_sets.c.digest.in_(chunk))
            for digest, id_, text in conn.execute(q):
                if by_digest[digest] == text:
                    out[text] = id_
        return out
