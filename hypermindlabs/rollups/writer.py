"""Maintaining the rollups: the append hook (same transaction as the events) and the rebuild.

What a run contributes is :mod:`~hypermindlabs.rollups.facts` (pure); the statements are the
store's (:mod:`hypermindlabs.store.rollup_cells`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Connection

from hypermindlabs.core.record import StoredEvent
from hypermindlabs.rollups.facts import Accumulator, add_run, part_of_key, slice_id
from hypermindlabs.store.attribution import Reattribution
from hypermindlabs.store.rollup_cells import (
    EVENT_FIELDS,
    begin_rebuild,
    count_runs,
    fetch_runs,
    lock_writers,
    max_seq,
    run_id_pages,
    run_page,
    write_cells,
)
from hypermindlabs.store.run_batches import touched_runs

__all__ = ["RollupHook", "rebuild_on", "rebuild_in_chunks", "write", "EVENT_FIELDS"]

Progress = Callable[[int, int], None]


class RollupHook:
    """``EventStore.append_hooks`` entry: updates the rollups with the newly stored events."""

    def __init__(self) -> None:
        # Slice ids seen committed. Slices are never deleted (a rebuild recomputes cells and
        # re-adds missing slices), so an id once seen stays valid; ids this transaction inserts
        # enter the cache only when a later batch finds them, i.e. after they were committed.
        self.known_slices: set[int] = set()

    def __call__(
        self, conn: Connection, rows: list[StoredEvent], reattributed: Mapping[str, Reattribution] | None = None
    ) -> None:
        if not rows:
            return
        reattributed = reattributed or {}
        lock_writers(conn)
        acc = Accumulator()
        # The batch's runs with their earlier events, read once for every derived view.
        for ch in touched_runs(conn, rows):
            run = ch.run
            if run is None:
                continue  # counted when its run event arrives
            if ch.run_is_new:
                add_run(acc, run, ch.prev_children + ch.new_children)
            else:
                # Late children change the run's fact (tools used, call counts, tokens, and
                # the root-cause class): retract the old one, add the new one; their own step
                # facts are added. The stored run already carries its new attribution.
                old = reattributed.get(ch.run_id)
                was = run if old is None else {**run, "failure_class": old.old_class, "cluster_id": old.old_cluster}
                add_run(acc, was, ch.prev_children, -1, steps=())
                add_run(acc, run, ch.prev_children + ch.new_children, steps=ch.new_children)
        write(conn, acc, known=self.known_slices)


def write(conn: Connection, acc: Accumulator, *, known: set[int] | None = None) -> None:
    """Write an accumulator's cells (slices first, then the merges, in key order)."""
    cells = acc.nonzero()
    if not cells:
        return
    kids = {k[0] for k in cells}
    ids = {kid: slice_id(acc.keys[kid]) for kid in kids}
    parts = {kid: part_of_key(acc.keys[kid]) for kid in kids}
    rows = sorted((parts[k], t, b, ids[k], *v) for (k, t, b), v in cells.items())
    slices = {sid: acc.keys[kid] for kid, sid in ids.items()}
    write_cells(conn, rows, slices, known=known)


# -- rebuild ------------------------------------------------------------------------------------
def rebuild_on(conn: Connection, *, progress: Progress | None = None, runs_per_write: int = 20_000) -> int:
    """Drop every rollup cell and recompute all from the raw events, on ``conn``'s transaction.

    Runs are read in start-time order (keyset pages over the run events), each with all its
    events, and written through the same UPSERTs as the append hook. Returns the runs counted.
    """
    begin_rebuild(conn)
    total = count_runs(conn)
    done = 0
    if progress:
        progress(0, total)
    acc = Accumulator()
    pending = 0
    for page in run_id_pages(conn):
        by_run = fetch_runs(conn, page)
        for rid in page:
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


def rebuild_in_chunks(
    transaction: Callable[[], Any], *, progress: Progress | None = None, runs_per_transaction: int = 2_000
) -> int:
    """The rebuild as many short write transactions, so no writer waits past SQLite's busy timeout.

    ``transaction`` is the store's ``EventStore.transaction``. The first transaction drops every
    cell and notes the highest stored sequence number S; each later one reads a page of runs whose
    run event was stored up to S, with only their events up to S, and adds their facts. Events
    stored after S were counted by the append hook as they arrived (their deltas are additive), so
    the sum equals a rebuild in one transaction. Reads during the rebuild see partial rollups.

    Only for a single-writer database (SQLite): there a batch's insert and its hook share the
    write lock, so S splits the events exactly. PostgreSQL writers take sequence numbers before
    the writers' lock and commit out of order, so there the rebuild stays one transaction (its
    writers wait on an advisory lock, which has no timeout).
    """
    with transaction() as conn:
        begin_rebuild(conn)
        upto = max_seq(conn)
        total = count_runs(conn)
    if progress:
        progress(0, total)
    done = 0
    after: tuple[int, int] | None = None
    while True:
        with transaction() as conn:
            page, after = run_page(conn, after, upto, runs_per_transaction)
            by_run = fetch_runs(conn, page, max_seq=upto)
            acc = Accumulator()
            for rid in page:
                evs = by_run.get(rid, [])
                run = next((x for x in evs if x["kind"] == "run"), None)
                if run is not None:
                    add_run(acc, run, [x for x in evs if x["kind"] != "run"])
            # A hook may have retracted a run's old fact before this chunk adds it back: the
            # merge deletes cells that net to nothing, as a rebuild in one transaction would
            # never write them.
            write(conn, acc)
        done += len(page)
        if progress:
            progress(done, total)
        if after is None:
            return done
