"""Retention: deleting the raw events of old runs, and the watermark that says they are gone.

``hypermind-obs prune --older-than 30d`` deletes every event of the runs whose run event started
before the cutoff (a run goes whole: its run event, children, run tags and OTLP state), and the
children of runs whose run event never arrived (orphans) that started before it. The rollups and
the exported-series view are *not* touched: they hold counts, not events, so the aggregates of
the pruned period and ``/metrics`` answer exactly as before. Rollups are dated by the run's start,
which is why a run is the unit pruned.

The watermark (table ``retention``, migration 0012) is raised in the first transaction, before any
event is deleted, so from then on:

- the append path refuses events that start before it (they could be retries of pruned events,
  which the store could no longer recognise as duplicates: they would be counted twice);
- drill-downs (run list, run page) for a window reaching before it say so.

Deletions run in short transactions of ``runs_per_transaction`` runs, so on SQLite no writer
waits for the write lock longer than one chunk takes (the same reason ``rebuild-rollups`` is
chunked); on PostgreSQL each chunk takes the rollup writers' advisory lock, so no append hook
reads a run half deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Select, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import aliased

from hypermindlabs.core.vocabulary import SQL_CHUNK, chunks
from hypermindlabs.store.rollup_cells import lock_writers
from hypermindlabs.store.schema import events, otlp_held_spans, otlp_traces, retention, run_tags

__all__ = ["Watermark", "PrunePlan", "PruneResult", "watermark", "plan", "prune"]

SCOPE = "events"
_T = TypeVar("_T")

Transaction = Callable[[], AbstractContextManager[Connection]]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Watermark:
    """Raw events of runs started before ``pruned_before_ns`` were deleted (totals of every prune)."""

    pruned_before_ns: int
    updated_ns: int
    runs_pruned: int
    events_pruned: int


@dataclass(frozen=True)
class PrunePlan:
    """What a prune to ``cutoff_ns`` deletes (``--dry-run`` prints it)."""

    cutoff_ns: int
    runs: int
    run_events: int
    orphan_events: int
    run_tags: int
    otlp_traces: int
    otlp_held_spans: int

    @property
    def events(self) -> int:
        return self.run_events + self.orphan_events


@dataclass(frozen=True)
class PruneResult:
    cutoff_ns: int
    runs: int
    events: int
    transactions: int


def watermark(conn: Connection) -> Watermark | None:
    """The store's retention watermark, or None when nothing was ever pruned."""
    r = retention.c
    row = conn.execute(
        select(r.pruned_before_ns, r.updated_ns, r.runs_pruned, r.events_pruned).where(r.scope == SCOPE)
    ).first()
    if row is None:
        return None
    return Watermark(int(row.pruned_before_ns), int(row.updated_ns), int(row.runs_pruned), int(row.events_pruned))


def pruned_before_ns(conn: Connection) -> int | None:
    """Just the watermark's time (the append path's check: one primary-key lookup per batch)."""
    value = conn.execute(select(retention.c.pruned_before_ns).where(retention.c.scope == SCOPE)).scalar()
    return None if value is None else int(value)


def _raise_watermark(conn: Connection, cutoff_ns: int, now_ns: int) -> int:
    """Set the watermark to ``cutoff_ns`` unless it is already later; the watermark in effect."""
    current = watermark(conn)
    if current is None:
        conn.execute(insert(retention).values(scope=SCOPE, pruned_before_ns=cutoff_ns, updated_ns=now_ns,
                                              runs_pruned=0, events_pruned=0))  # fmt: skip
        return cutoff_ns
    effective = max(current.pruned_before_ns, cutoff_ns)
    conn.execute(
        update(retention).where(retention.c.scope == SCOPE).values(pruned_before_ns=effective, updated_ns=now_ns)
    )
    return effective


def _count_pruned(conn: Connection, runs: int, events_: int, now_ns: int) -> None:
    r = retention.c
    conn.execute(
        update(retention)
        .where(r.scope == SCOPE)
        .values(runs_pruned=r.runs_pruned + runs, events_pruned=r.events_pruned + events_, updated_ns=now_ns)
    )


def _old_runs(cutoff_ns: int) -> Select[tuple[str]]:
    e = events.c
    return select(e.run_id).where(e.kind == "run", e.start_ns < cutoff_ns)


def _orphans(cutoff_ns: int) -> Select[tuple[str]]:
    # Children started before the cutoff whose run event is not stored (never arrived, or an
    # OTLP trace still open): nothing counted them, and their run could no longer be stored.
    e = events.c
    run = aliased(events)
    has_run = exists().where(run.c.run_id == e.run_id, run.c.kind == "run")
    return select(e.run_id).where(e.kind != "run", e.start_ns < cutoff_ns, ~has_run)


def plan(conn: Connection, cutoff_ns: int) -> PrunePlan:
    """Count what a prune to ``cutoff_ns`` would delete (no writes)."""
    old = _old_runs(cutoff_ns).scalar_subquery()
    orphans = _orphans(cutoff_ns)
    e = events.c

    def count(q: Select[tuple[str]] | Select[tuple[int]]) -> int:
        return int(conn.execute(select(func.count()).select_from(q.subquery())).scalar_one())

    orphan_ids = _orphans(cutoff_ns).distinct().scalar_subquery()
    return PrunePlan(
        cutoff_ns=cutoff_ns,
        runs=count(_old_runs(cutoff_ns)),
        run_events=count(select(e.seq).where(e.run_id.in_(old))),
        orphan_events=count(orphans),
        run_tags=count(select(run_tags.c.run_id).where(run_tags.c.run_id.in_(old))),
        otlp_traces=count(
            select(otlp_traces.c.trace_id).where(
                or_(otlp_traces.c.run_id.in_(old), otlp_traces.c.run_id.in_(orphan_ids))
            )
        ),
        otlp_held_spans=count(select(otlp_held_spans.c.span_id).where(otlp_held_spans.c.run_id.in_(old))),
    )


def _run_page(conn: Connection, cutoff_ns: int, limit: int) -> list[str]:
    # The oldest runs left before the cutoff (ix_runs_start): each chunk deletes what it read,
    # so the next page starts at the front again.
    e = events.c
    q = select(e.run_id).where(e.kind == "run", e.start_ns < cutoff_ns).order_by(e.start_ns, e.seq).limit(limit)
    return list(conn.execute(q).scalars())


def _delete_state(conn: Connection, run_ids: Sequence[str]) -> None:
    for chunk in chunks(list(run_ids)):
        conn.execute(delete(run_tags).where(run_tags.c.run_id.in_(chunk)))
        conn.execute(delete(otlp_held_spans).where(otlp_held_spans.c.run_id.in_(chunk)))
        conn.execute(delete(otlp_traces).where(otlp_traces.c.run_id.in_(chunk)))


def _delete_runs(conn: Connection, run_ids: Sequence[str]) -> int:
    deleted = 0
    for chunk in chunks(list(run_ids)):
        deleted += int(conn.execute(delete(events).where(events.c.run_id.in_(chunk))).rowcount or 0)
    _delete_state(conn, run_ids)
    return deleted


def _delete_orphans(conn: Connection, run_ids: Sequence[str], cutoff_ns: int) -> int:
    # Checked again inside the write transaction: a run event that arrived since the scan
    # makes its children part of a counted run, which is then kept.
    e = events.c
    run = aliased(events)
    has_run = exists().where(run.c.run_id == e.run_id, run.c.kind == "run")
    stmt = delete(events).where(and_(e.run_id.in_(run_ids), e.kind != "run", e.start_ns < cutoff_ns, ~has_run))
    deleted = int(conn.execute(stmt).rowcount or 0)
    still_open = set(conn.execute(select(e.run_id).where(e.run_id.in_(run_ids)).distinct()).scalars())
    gone = [r for r in run_ids if r not in still_open]
    if gone:
        _delete_state(conn, gone)
    return deleted


def prune(
    transaction: Transaction,
    read: Transaction,
    cutoff_ns: int,
    *,
    now_ns: int,
    runs_per_transaction: int = 2_000,
    progress: Progress | None = None,
) -> PruneResult:
    """Raise the watermark to ``cutoff_ns``, then delete the raw events before it in short transactions.

    ``transaction`` is ``EventStore.transaction`` (serialized with the store's writers on SQLite),
    ``read`` ``EventStore.read``. ``progress(done_runs, total_runs)`` after each chunk.
    """
    def raise_watermark() -> None:
        with transaction() as conn:
            lock_writers(conn)
            _raise_watermark(conn, cutoff_ns, now_ns)

    _retry_deadlock(raise_watermark)
    with read() as conn:
        total = int(conn.execute(select(func.count()).select_from(_old_runs(cutoff_ns).subquery())).scalar_one())
        orphan_ids = [str(r) for r in conn.execute(_orphans(cutoff_ns).distinct()).scalars()]
    if progress:
        progress(0, total)
    runs = deleted = transactions = 0
    def delete_page() -> tuple[int, int]:
        with transaction() as conn:
            lock_writers(conn)
            page = _run_page(conn, cutoff_ns, runs_per_transaction)
            n = _delete_runs(conn, page) if page else 0
            if page:
                _count_pruned(conn, len(page), n, now_ns)
            return len(page), n

    while True:
        page_runs, n = _retry_deadlock(delete_page)
        if not page_runs:
            break
        runs, deleted, transactions = runs + page_runs, deleted + n, transactions + 1
        if progress:
            progress(min(runs, max(total, runs)), max(total, runs))
    for chunk in _chunked(orphan_ids, runs_per_transaction):

        def delete_orphans(chunk: list[str] = chunk) -> int:
            with transaction() as conn:
                lock_writers(conn)
                n = _delete_orphans(conn, chunk, cutoff_ns)
                _count_pruned(conn, 0, n, now_ns)
                return n

        deleted, transactions = deleted + _retry_deadlock(delete_orphans), transactions + 1
    return PruneResult(cutoff_ns=cutoff_ns, runs=runs, events=deleted, transactions=transactions)


def _retry_deadlock(work: Callable[[], _T], attempts: int = 3) -> _T:
    # A chunk holds nothing but the writers' lock while it waits for it, yet PostgreSQL may pick
    # it as the victim of a deadlock among other writers queued on that lock: the chunk rolled
    # back whole, so running it again is safe.
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except OperationalError as exc:
            if attempt == attempts or getattr(exc.orig, "sqlstate", None) != "40P01":
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _chunked(values: list[str], size: int) -> Iterator[list[str]]:
    # Orphans are deleted a page at a time; within a page, IN lists stay under SQL_CHUNK.
    for start in range(0, len(values), min(size, SQL_CHUNK)):
        yield values[start : start + min(size, SQL_CHUNK)]
