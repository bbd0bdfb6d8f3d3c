"""Maintaining the rollups: the append hook (same transaction as the events) and the rebuild.

Dialect differences (bulk UPSERT, the writer lock) are in :mod:`hypermindlabs.store.dialect`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, or_, select
from sqlalchemy.engine import Connection

from hypermindlabs.rollups.facts import MEASURES, Accumulator, SliceKey, add_run, part_of_key, slice_id
from hypermindlabs.store.dialect import advisory_xact_lock, bulk_write, lock_tables_exclusive
from hypermindlabs.store.schema import (
    events,
    rollup_cells,
    rollup_slice_members,
    rollup_slices,
)

__all__ = ["RollupHook", "rebuild_on", "EVENT_FIELDS"]

log = logging.getLogger(__name__)

#: The event columns facts are computed from.
EVENT_FIELDS: tuple[str, ...] = (
    "event_id", "run_id", "kind", "start_ns", "end_ns", "status", "project", "scenario", "model", "tool",
    "input_tokens", "output_tokens", "input_chars", "output_chars", "tokens_estimated", "failure_class",
    "tags",
)  # fmt: skip
_CHUNK = 500
# Serializes rollup maintenance between PostgreSQL writers (see RollupHook.__call__).
_PG_LOCK_KEY = 0x68_6D_72_6F_6C_6C  # "hmroll"

Progress = Callable[[int, int], None]
_CELL_KEY = ("part", "tier", "bucket_ns", "slice_id", "bin")


_TABLES = {"cells": rollup_cells, "slices": rollup_slices, "members": rollup_slice_members}
_COLUMNS = {
    "cells": [*_CELL_KEY, *MEASURES],
    "slices": [c.name for c in rollup_slices.columns],
    "members": ["slice_id", "key", "value"],
}
_UPSERTS: dict[str, dict[str, Any]] = {
    "cells": {"conflict": "add", "keys": _CELL_KEY, "add": MEASURES},
    "slices": {"conflict": "ignore", "keys": ("slice_id",)},
    "members": {"conflict": "ignore", "keys": ("slice_id", "key", "value")},
}


def _write_many(conn: Connection, name: str, rows: list[tuple[Any, ...]]) -> None:
    """UPSERT rows (tuples in ``_COLUMNS[name]`` order) into one of the rollup tables."""
    bulk_write(conn, _TABLES[name], _COLUMNS[name], rows, **_UPSERTS[name])


def _lock(conn: Connection) -> None:
    # PostgreSQL writers run concurrently. Two batches touching one run (its run event in
    # one, a late child in the other) must not both compute that run's fact from snapshots
    # missing the other's events; holding one transaction-scoped lock while reading and
    # writing rollups makes each hook see the committed work of the previous one (READ
    # COMMITTED takes a fresh snapshot per statement). It also orders the UPSERTs, so hot
    # rollup rows cannot deadlock. SQLite has a single writer already.
    advisory_xact_lock(conn, _PG_LOCK_KEY)


class RollupHook:
    """``EventStore.append_hooks`` entry: updates the rollups with the newly stored events."""

    def __init__(self) -> None:
        # Slice ids seen committed. Slices are never deleted (a rebuild recomputes cells and
        # re-adds missing slices), so an id once seen stays valid; ids this transaction inserts
        # enter the cache only when a later batch finds them, i.e. after they were committed.
        self.known_slices: set[int] = set()

    def __call__(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        _lock(conn)
        by_run: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_run.setdefault(r["run_id"], []).append(r)
        stored = _stored_counts(conn, list(by_run))
        # Events of these runs stored by earlier batches, when they matter: the run's children
        # (the run event is new) or the whole run (late children: the run's fact changes).
        need = [
            rid for rid, new in by_run.items()
            if stored.get(rid, (0, False))[0] > len(new)
            and (stored[rid][1] or any(e["kind"] == "run" for e in new))
        ]  # fmt: skip
        earlier = _fetch_runs(conn, need, exclude={r["event_id"] for r in rows}) if need else {}
        acc = Accumulator()
        for rid, new in by_run.items():
            prev = earlier.get(rid, [])
            run_new = next((e for e in new if e["kind"] == "run"), None)
            run = run_new or next((e for e in prev if e["kind"] == "run"), None)
            if run is None:
                continue  # counted when its run event arrives
            prev_children = [e for e in prev if e["kind"] != "run"]
            new_children = [e for e in new if e["kind"] != "run"]
            if run_new is not None:
                add_run(acc, run, prev_children + new_children)
            else:
                # Late children change the run's fact (tools used, call counts, tokens):
                # retract the old one, add the new one; their own step facts are added.
                add_run(acc, run, prev_children, -1, steps=())
                add_run(acc, run, prev_children + new_children, steps=new_children)
        write(conn, acc, known=self.known_slices)


def _stored_counts(conn: Connection, run_ids: list[str]) -> dict[str, tuple[int, bool]]:
    """Per run: how many events are stored (this batch included) and whether its run event is."""
    out: dict[str, tuple[int, bool]] = {}
    has_run = func.max(case((events.c.kind == "run", 1), else_=0))
    for chunk in _chunks(run_ids):
        q = (
            select(events.c.run_id, func.count(), has_run)
            .where(events.c.run_id.in_(chunk))
            .group_by(events.c.run_id)
        )
        for rid, n, run in conn.execute(q):
            out[rid] = (int(n), bool(run))
    return out


def _fetch_runs(
    conn: Connection, run_ids: Iterable[str], *, exclude: Set[str] = frozenset()
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    cols = [events.c[k] for k in EVENT_FIELDS]
    for chunk in _chunks(list(run_ids)):
        for row in conn.execute(select(*cols).where(events.c.run_id.in_(chunk))):
            m = row._mapping
            if m["event_id"] not in exclude:
                out.setdefault(m["run_id"], []).append(dict(m))
    return out


def write(conn: Connection, acc: Accumulator, *, known: set[int] | None = None) -> None:
    """Write an accumulator's cells: slices first, then UPSERT measure = measure + delta, in key order."""
    cells = acc.nonzero()
    if not cells:
        return
    kids = {k[0] for k in cells}
    ids = {kid: slice_id(acc.keys[kid]) for kid in kids}
    parts = {kid: part_of_key(acc.keys[kid]) for kid in kids}
    _ensure_slices(conn, {sid: acc.keys[kid] for kid, sid in ids.items()}, known)
    rows = sorted((parts[k], t, b, ids[k], bn, *v) for (k, t, b, bn), v in cells.items())
    _write_many(conn, "cells", rows)
    if acc.retracted:
        # A retracted run leaves empty cells behind where no other fact remains: drop them, so
        # the table holds exactly what a rebuild would write.
        c = rollup_cells.c
        emptied = [dict(zip("ptbsx", r[:5], strict=True)) for r in rows if r[5] < 0]
        if emptied:
            stmt = delete(rollup_cells).where(
                c.part == bindparam("p"), c.tier == bindparam("t"), c.bucket_ns == bindparam("b"),
                c.slice_id == bindparam("s"), c.bin == bindparam("x"), c.n == 0,
            )  # fmt: skip
            conn.execute(stmt, emptied)


def _ensure_slices(conn: Connection, by_id: Mapping[int, SliceKey], known: set[int] | None) -> None:
    todo = sorted(i for i in by_id if known is None or i not in known)
    existing: set[int] = set()
    col = rollup_slices.c.slice_id
    for chunk in _chunks(todo):
        existing.update(conn.execute(select(col).where(col.in_(chunk))).scalars())
    if known is not None:
        if len(known) > 500_000:
            known.clear()
        known.update(existing)
    missing = [i for i in todo if i not in existing]
    if not missing:
        return
    _write_many(conn, "slices", [(i, *by_id[i][:11]) for i in missing])
    _write_many(conn, "members", sorted((i, k, v) for i in missing for k, v in by_id[i][11]))


def _chunks(values: list[Any], size: int = _CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


# -- rebuild ------------------------------------------------------------------------------------
def rebuild_on(conn: Connection, *, progress: Progress | None = None, runs_per_write: int = 20_000) -> int:
    """Drop every rollup cell and recompute all from the raw events, on ``conn``'s transaction.

    Runs are read in start-time order (keyset pages over the run events), each with all its
    events, and written through the same UPSERTs as the append hook. Returns the runs counted.
    """
    _lock(conn)
    # Writers wait (reads go on, seeing the old rollups) until the rebuild commits.
    lock_tables_exclusive(conn, (rollup_slices, rollup_slice_members, rollup_cells))
    # Slices are a dictionary of dimension combinations, never deleted (writers cache them);
    # the cells are recomputed, and slices missing from the dictionary are added back.
    conn.execute(delete(rollup_cells))
    total = int(
        conn.execute(select(func.count()).select_from(events).where(events.c.kind == "run")).scalar_one()
    )
    done = 0
    if progress:
        progress(0, total)
    acc = Accumulator()
    pending = 0
    last: tuple[int, int] | None = None
    e = events.c
    while True:
        q = select(e.start_ns, e.seq, e.run_id).where(e.kind == "run")
        if last is not None:
            q = q.where(or_(e.start_ns > last[0], and_(e.start_ns == last[0], e.seq > last[1])))
        page = conn.execute(q.order_by(e.start_ns, e.seq).limit(_CHUNK * 4)).all()
        if not page:
            break
        last = (page[-1].start_ns, page[-1].seq)
        by_run = _fetch_runs(conn, [r.run_id for r in page])
        for rid in (r.run_id for r in page):
            evs = by_run.get(rid, [])
            run = next((x for x in evs if x["kind"] == "run"), None)
            if run is not None:
                add_run(acc, run, [x for x in evs if x["kind"] != "run"])
        done += len(page)
        pending += len(page)
        if pending >= runs_per_write:
            write(conn, acc)
            acc, pending = Accumulator(), 0
        if progress:
            progress(done, total)
    write(conn, acc)
    return done
