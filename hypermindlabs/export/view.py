"""The exported-series view: maintained in the append transaction, rebuilt from raw events.

:class:`ExportHook` is an ``EventStore.append_hooks`` entry, like the rollups' hook: each batch's
new events become deltas of the cumulative series (:mod:`~hypermindlabs.export.facts`), written
with the events, so ``/metrics`` of every process and worker reads the same numbers, counters never
decrease across restarts and every ingest door (HTTP, CLI, demo, RunManager, OTLP) counts once.

A run counts when its run event is stored (steps stored before it count with it). A step arriving
after its run changes the run's fact (tokens derived from steps, its root-cause class and cluster):
the old fact is retracted and the new one added in the same transaction — with the run's previous
attribution when the store reports one (``reattributed``, triage issue #9). :func:`rebuild_on`
recomputes the whole view and equals what the increments wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from hypermindlabs import conventions as c
from hypermindlabs.export.admission import WindowCaps
from hypermindlabs.export.facts import Deltas, add_run
from hypermindlabs.store import export_series as sql
from hypermindlabs.store.run_batches import touched_runs

__all__ = ["ExportHook", "rebuild_on"]

log = logging.getLogger(__name__)


def _bind(caps: WindowCaps, conn: Connection, acc: Deltas) -> Any:
    def on_fold(label: str, sign: int) -> None:
        acc.inc(c.LABEL_OVERFLOW, {c.ATTR_LABEL: label}, sign)

    return caps.bind(conn, on_fold)


class ExportHook:
    """``EventStore.append_hooks`` entry: updates the exported series with the newly stored events."""

    def __init__(self, caps: WindowCaps) -> None:
        self.caps = caps

    def __call__(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]], reattributed: Mapping[str, Any] | None = None
    ) -> None:
        if not rows:
            return
        reattributed = reattributed or {}
        sql.lock_writers(conn)
        acc = Deltas()
        cap = _bind(self.caps, conn, acc)
        # The batch's runs with their earlier events, read once for every derived view (the
        # rollups' hook read them in this transaction already).
        for ch in touched_runs(conn, rows):
            run = ch.run
            if run is None:
                continue  # counted when its run event arrives
            if ch.run_is_new:
                add_run(acc, run, ch.prev_children + ch.new_children, cap)
            else:
                old = reattributed.get(ch.run_id)
                was = run if old is None else {**run, "failure_class": old.old_class, "cluster_id": old.old_cluster}
                add_run(acc, was, ch.prev_children, cap, -1, steps=())
                add_run(acc, run, ch.prev_children + ch.new_children, cap, steps=ch.new_children)
        cap.flush()
        _write(conn, acc)


def _write(conn: Connection, acc: Deltas) -> None:
    rows = acc.rows()
    sql.write_series(conn, rows)
    if acc.retracted:
        sql.drop_empty(conn, [(r[0], r[1]) for r in rows if r[4] < 0])


def rebuild_on(conn: Connection, caps: WindowCaps) -> int:
    """Drop the view and recompute it from every stored run, on ``conn``'s transaction; runs counted.

    Label values are mapped through the admissions as they stand (values still active keep their
    names), so a rebuild of a database whose values never expired equals the increments exactly.
    """
    sql.clear_series(conn)
    done = 0
    acc = Deltas()
    cap = _bind(caps, conn, acc)
    for page in sql.run_pages(conn):
        for evs in page.values():
            run = next((x for x in evs if x["kind"] == "run"), None)
            if run is not None:
                add_run(acc, run, [x for x in evs if x["kind"] != "run"], cap)
                done += 1
        if len(acc.values) > 50_000:
            cap.flush()
            _write(conn, acc)
            acc = Deltas()
            cap = _bind(caps, conn, acc)
    cap.flush()
    _write(conn, acc)
    return done
