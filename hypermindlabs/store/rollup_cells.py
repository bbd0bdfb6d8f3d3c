"""The rollup tables' SQL: the writers' locks and UPSERTs, the event reads the facts come from, rebuilds.

:mod:`hypermindlabs.rollups` computes the facts (pure, :mod:`~hypermindlabs.rollups.facts`) and
decides what to write; every statement it needs is here. Dialect differences (bulk UPSERT,
advisory and table locks) are :mod:`hypermindlabs.store.dialect`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.engine import Connection

from hypermindlabs.core.sketch import pack, unpack
from hypermindlabs.core.vocabulary import ROLLUP_MEASURES as MEASURES
from hypermindlabs.core.vocabulary import SQL_CHUNK, chunks
from hypermindlabs.store.dialect import (
    advisory_xact_lock,
    bulk_update,
    bulk_write,
    lock_tables_exclusive,
    rows_by_keys,
)
from hypermindlabs.store.schema import events, rollup_cells, rollup_slice_members, rollup_slices
from hypermindlabs.store.tag_sets import event_column

__all__ = [
    "EVENT_FIELDS",
    "lock_writers",
    "stored_counts",
    "fetch_runs",
    "write_cells",
    "begin_rebuild",
    "count_runs",
    "run_id_pages",
]

#: The event columns facts are computed from.
EVENT_FIELDS: tuple[str, ...] = (
    "event_id", "run_id", "kind", "start_ns", "end_ns", "status", "project", "scenario", "model", "tool",
    "input_tokens", "output_tokens", "input_chars", "output_chars", "tokens_estimated", "failure_class",
    "cluster_id", "tags",
)  # fmt: skip
_EVENT_COLUMNS = [event_column(events, k) for k in EVENT_FIELDS]  # built once: a statement per call
# Serializes rollup maintenance between PostgreSQL writers (see lock_writers).
_PG_LOCK_KEY = 0x68_6D_72_6F_6C_6C  # "hmroll"
_CELL_KEY = ("part", "tier", "bucket_ns", "slice_id")

_TABLES = {"slices": rollup_slices, "members": rollup_slice_members}
_CELL_COLUMNS = [*_CELL_KEY, *MEASURES, "sketch"]
_COLUMNS = {
    "slices": [c.name for c in rollup_slices.columns],
    "members": ["slice_id", "key", "value"],
}
_UPSERTS: dict[str, dict[str, Any]] = {
    "slices": {"conflict": "ignore", "keys": ("slice_id",)},
    "members": {"conflict": "ignore", "keys": ("slice_id", "key", "value")},
}


def _write_many(conn: Connection, name: str, rows: list[tuple[Any, ...]]) -> None:
    """UPSERT rows (tuples in ``_COLUMNS[name]`` order) into one of the rollup tables."""
    bulk_write(conn, _TABLES[name], _COLUMNS[name], rows, **_UPSERTS[name])


def lock_writers(conn: Connection) -> None:
    """Hold the rollup writers' lock until this transaction ends."""
    # PostgreSQL writers run concurrently. Two batches touching one run (its run event in
    # one, a late child in the other) must not both compute that run's fact from snapshots
    # missing the other's events; holding one transaction-scoped lock while reading and
    # writing rollups makes each hook see the committed work of the previous one (READ
    # COMMITTED takes a fresh snapshot per statement). It also orders the UPSERTs, so hot
    # rollup rows cannot deadlock. SQLite has a single writer already.
    advisory_xact_lock(conn, _PG_LOCK_KEY)



def stored_counts(conn: Connection, run_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
    """Per run: how many events are stored (this batch included) and whether its run event is."""
    out: dict[str, tuple[int, bool]] = {}
    has_run = func.max(case((events.c.kind == "run", 1), else_=0))
    for chunk in chunks(run_ids):
        q = (
            select(events.c.run_id, func.count(), has_run)
            .where(events.c.run_id.in_(chunk))
            .group_by(events.c.run_id)
        )
        for rid, n, run in conn.execute(q):
            out[rid] = (int(n), bool(run))
    return out


def fetch_runs(
    conn: Connection, run_ids: Iterable[str], *, exclude: Set[str] = frozenset(), max_seq: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every stored event (its EVENT_FIELDS) of ``run_ids``, by run, minus ``exclude`` event ids
    (and, with ``max_seq``, only the events stored up to that sequence number)."""
    out: dict[str, list[dict[str, Any]]] = {}
    cols = _EVENT_COLUMNS
    for chunk in chunks(list(run_ids)):
        q = select(*cols).where(events.c.run_id.in_(chunk))
        if max_seq is not None:
            q = q.where(events.c.seq <= max_seq)
        for row in conn.execute(q):
            m = row._mapping
            if m["event_id"] not in exclude:
                out.setdefault(m["run_id"], []).append(dict(m))
    return out


def write_cells(
    conn: Connection,
    rows: list[tuple[Any, ...]],
    slices: Mapping[int, tuple[Any, ...]],
    *,
    known: set[int] | None = None,
) -> None:
    """Add deltas to cells: their slices first, then each cell read, merged and written back.

    ``rows`` are (part, tier, bucket_ns, slice_id, measures, sketch delta ``{bin: count}``) sorted
    by key; ``slices`` the slice keys by id; ``known`` a cache of slice ids seen committed. A
    cell's sketch is one packed value (:func:`hypermindlabs.core.sketch.pack`), so the merge is
    read-modify-write under the writers' lock (:func:`lock_writers`; SQLite has one writer). A
    cell left with nothing is deleted, so the table holds exactly what a rebuild would write.
    """
    _ensure_slices(conn, slices, known)
    _hold_write_lock(conn)
    keys = [r[:4] for r in rows]
    stored = _stored_cells(conn, keys)
    # New cells are plain INSERTs and stored ones keyed UPDATEs: the writers' lock (one writer on
    # SQLite) means no other transaction adds a cell between the read above and these writes, and
    # both skip the conflict handling of an UPSERT (PostgreSQL's speculative insertion).
    new: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []
    emptied: list[tuple[Any, ...]] = []
    nm = len(MEASURES)
    for key4, r in zip(keys, rows, strict=True):
        measures, delta = r[4], r[5]
        old = stored.get(key4) if stored else None
        if old is None:
            if measures[0] > 0:  # a new cell with facts (the count): nothing to merge or delete
                new.append((*key4, *measures, pack(delta)))
                continue
            sums, bins = measures, delta
        else:
            sums = [a + b for a, b in zip(old[:nm], measures, strict=True)]
            bins = unpack(old[nm])
            for b, c in delta.items():
                bins[b] = bins.get(b, 0) + c
        if not any(sums) and not any(bins.values()):
            if old is not None:
                emptied.append(key4)
            continue
        (new if old is None else changed).append((*key4, *sums, pack(bins)))
    bulk_write(conn, rollup_cells, _CELL_COLUMNS, new)
    bulk_update(conn, rollup_cells, _CELL_KEY, _CELL_COLUMNS[4:], changed)
    if emptied:
        c = rollup_cells.c
        for p, t, b, sid in emptied:
            conn.execute(delete(rollup_cells).where(c.part == p, c.tier == t, c.bucket_ns == b, c.slice_id == sid))


def _hold_write_lock(conn: Connection) -> None:
    """SQLite: take the write lock now if this transaction has not written yet, so the cells read
    next cannot change before they are written back. (The driver begins a transaction only at the
    first write; a read before it sees whatever another connection commits meanwhile — a chunked
    rebuild reads cells while the ingest path writes between its chunks.) PostgreSQL writers hold
    :func:`lock_writers` already."""
    if conn.dialect.name == "sqlite" and not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("DELETE FROM rollup_cells WHERE 0")  # a write statement: BEGIN and the lock


def _stored_cells(conn: Connection, keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The stored measures and sketch of each of these cell keys that exists."""
    rows = rows_by_keys(conn, rollup_cells, _CELL_KEY, keys, (*_CELL_KEY, *MEASURES, "sketch"), chunk=SQL_CHUNK)
    return {tuple(row[:4]): tuple(row[4:]) for row in rows}


def _ensure_slices(conn: Connection, by_id: Mapping[int, tuple[Any, ...]], known: set[int] | None) -> None:
    todo = sorted(i for i in by_id if known is None or i not in known)
    existing = {r[0] for r in rows_by_keys(conn, rollup_slices, ("slice_id",), [(i,) for i in todo], ("slice_id",))}
    if known is not None:
        if len(known) > 500_000:
            known.clear()
        known.update(existing)
    missing = [i for i in todo if i not in existing]
    if not missing:
        return
    _write_many(conn, "slices", [(i, *by_id[i][:11]) for i in missing])
    _write_many(conn, "members", sorted((i, k, v) for i in missing for k, v in by_id[i][11]))


def begin_rebuild(conn: Connection) -> None:
    """Lock out writers (readers go on, seeing the old rollups) and drop every cell.

    Slices are a dictionary of dimension combinations, never deleted (writers cache them); the
    cells are recomputed, and slices missing from the dictionary are added back.
    """
    lock_writers(conn)
    lock_tables_exclusive(conn, (rollup_slices, rollup_slice_members, rollup_cells))
    conn.execute(delete(rollup_cells))


def max_seq(conn: Connection) -> int:
    """The highest stored event sequence number (0 when empty)."""
    return int(conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one())


def run_page(
    conn: Connection, after: tuple[int, int] | None, upto_seq: int, size: int
) -> tuple[list[str], tuple[int, int] | None]:
    """One keyset page of run ids in run start order, among run events stored up to ``upto_seq``;
    with the key to continue after (None when this was the last page)."""
    e = events.c
    q = select(e.start_ns, e.seq, e.run_id).where(e.kind == "run", e.seq <= upto_seq)
    if after is not None:
        q = q.where(or_(e.start_ns > after[0], and_(e.start_ns == after[0], e.seq > after[1])))
    page = conn.execute(q.order_by(e.start_ns, e.seq).limit(size)).all()
    last = (page[-1].start_ns, page[-1].seq) if len(page) == size else None
    return [r.run_id for r in page], last


def count_runs(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(events).where(events.c.kind == "run")).scalar_one())


def run_id_pages(conn: Connection, page_size: int = SQL_CHUNK * 4) -> Iterator[list[str]]:
    """Every run id, in run start order, in keyset pages."""
    last: tuple[int, int] | None = None
    e = events.c
    while True:
        q = select(e.start_ns, e.seq, e.run_id).where(e.kind == "run")
        if last is not None:
            q = q.where(or_(e.start_ns > last[0], and_(e.start_ns == last[0], e.seq > last[1])))
        page = conn.execute(q.order_by(e.start_ns, e.seq).limit(page_size)).all()
        if not page:
            return
        last = (page[-1].start_ns, page[-1].seq)
        yield [r.run_id for r in page]
