"""The append-only, idempotent event store: SQLite (default, a WAL file) or PostgreSQL by URL.

One interface for both; dialect-specific SQL stays in :mod:`hypermindlabs.store._dialect`.
Every append is one transaction: the valid events of a batch are stored whole, or not at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from hypermindlabs.core.events import RunEvent, format_timestamp
from hypermindlabs.core.filters import Filters
from hypermindlabs.core.record import StoredEvent, stored_event
from hypermindlabs.core.vocabulary import INHERITED, chunks
from hypermindlabs.store import attribution, failures, retention, run_batches, runs
from hypermindlabs.store.alerts import AlertStore
from hypermindlabs.store.attribution import Attributor, Reattribution, attribute_batch
from hypermindlabs.store.deadline import ReadTimeout, read_deadline
from hypermindlabs.store.dialect import (
    begin_snapshot,
    bulk_write,
    end_read,
    insert_new,
    install_read_deadlines,
    is_read_timeout,
    keyed_reads_only,
    normalize_url,
    open_engine,
    single_writer,
    write_lock_free,
)
from hypermindlabs.store.failures import failed_children, set_failure_labels
from hypermindlabs.store.label_admissions import LabelAdmissions
from hypermindlabs.store.otlp_state import OtlpTraces
from hypermindlabs.store.rollup_cells import lock_writers
from hypermindlabs.store.rollup_reads import RollupReader
from hypermindlabs.store.runs import RunPage, run_conditions
from hypermindlabs.store.schema import events, run_tags
from hypermindlabs.store.tag_sets import EMPTY as EMPTY_TAGS
from hypermindlabs.store.tag_sets import TagSets, event_columns

__all__ = ["EventStore", "AppendResult", "AppendHook", "CommitHook", "Enricher", "Rejection", "RunPage",
           "migrate_schema", "normalize_url", "run_conditions", "schema_version"]  # fmt: skip

log = logging.getLogger(__name__)
_MIGRATIONS = Path(__file__).parent / "migrations"

Enricher = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""Derives ``failure_class`` and ``cluster_id`` at ingest from an event row (triage's ``enrich``)."""


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "error": self.error}


@dataclass
class AppendResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def merge(self, other: AppendResult) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)


def migrate_schema(engine: Engine) -> None:
    """Bring the database to the latest schema (Alembic ``upgrade head``, in one transaction)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def schema_includes(version: str | None, revision: str) -> bool:
    """Whether a database at ``version`` has ``revision`` applied, by the migration chain.

    Not by comparing the names: numbers are assigned per area, so a later migration can carry a
    lower number (0015 revises 0016).
    """
    if version is None:
        return False
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    chain = ScriptDirectory.from_config(cfg).iterate_revisions(version, "base")
    return any(script.revision == revision for script in chain)


def schema_version(engine: Engine) -> str | None:
    """The database's Alembic revision (None before the first migration)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


AppendHook = Callable[[Connection, list[StoredEvent], Mapping[str, Reattribution]], None]
"""Runs in the append transaction with the newly stored events (column dicts of ``schema.events``)
and the stored failed runs whose root cause this batch changed, with their previous class and
cluster (:mod:`hypermindlabs.store.attribution`), so derived views retract and re-add them."""
CommitHook = Callable[[list[StoredEvent]], None]
"""Runs after commit with the newly stored events, once each; its failure is logged, never raised."""


class EventStore:
    """Append-only event storage with run lookup and filtered run listing.

    What happens to an event beyond storing it is passed in (the composition root,
    :mod:`hypermindlabs.wiring`, does it): ``enricher`` adds derived columns (triage's failure
    class and cluster), ``append_hooks`` run in the append transaction (rollups), ``commit_hooks``
    after commit (exported metrics). The store imports nothing above ``core``.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        enricher: Enricher | None = None,
        attributor: Attributor | None = None,
        append_hooks: Sequence[AppendHook] = (),
        commit_hooks: Sequence[CommitHook] = (),
        read_timeout_ms: int | None = None,
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.enricher = enricher
        self.attributor = attributor
        # The budget of a :meth:`read` outside a web request (which brings its own deadline).
        self.read_timeout_ms = read_timeout_ms
        install_read_deadlines(engine)
        self._write_lock = threading.Lock() if single_writer(engine) else None
        self.label_admissions = LabelAdmissions(engine)
        self._tag_sets = TagSets()
        self.append_hooks: list[AppendHook] = list(append_hooks)
        self.commit_hooks: list[CommitHook] = list(commit_hooks)

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str,
        *,
        migrate: bool = True,
        enricher: Enricher | None = None,
        attributor: Attributor | None = None,
        append_hooks: Sequence[AppendHook] = (),
        commit_hooks: Sequence[CommitHook] = (),
    ) -> EventStore:
        """A store on ``url`` with exactly the enricher, attributor and hooks given (none by default:
        a bare store; :func:`hypermindlabs.wiring.build_pipeline` gives the product's pipeline)."""
        store = cls(open_engine(url), enricher=enricher, attributor=attributor, append_hooks=append_hooks,
                    commit_hooks=commit_hooks)  # fmt: skip
        if migrate:
            store.migrate()
        return store

    def migrate(self) -> None:
        migrate_schema(self.engine)

    def schema_version(self) -> str | None:
        return schema_version(self.engine)

    @staticmethod
    def head_version() -> str | None:
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        return ScriptDirectory.from_config(cfg).get_current_head()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        with self.read() as conn:
            return conn.execute(select(1)).scalar() == 1

    def write_blocked(self) -> str | None:
        """Why a write could not start now (SQLite locked by another process), or None."""
        return write_lock_free(self.engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading, every statement on it cut at the read deadline.

        The deadline is the caller's (a web request opens one for its whole duration), else
        ``read_timeout_ms`` from now (none when that is None). Past it the database cancels the
        statement and this raises :class:`~hypermindlabs.store.deadline.ReadTimeout`, also for
        rows fetched straight from the driver's cursor.
        """
        with read_deadline(self.read_timeout_ms), self.engine.connect() as conn:
            try:
                yield conn
                end_read(conn)
            except ReadTimeout:
                raise
            except Exception as exc:
                if is_read_timeout(exc):
                    raise ReadTimeout(self.read_timeout_ms or 0) from exc
                raise

    # -- writes ----------------------------------------------------------------------------
    def append(self, batch: Sequence[RunEvent], *, indexes: Sequence[int] | None = None) -> AppendResult:
        """Store a batch of parsed events in one transaction; idempotent by ``event_id``.

        ``indexes`` are the positions of the events in the client's batch, for rejections.
        A run event for a run_id that already has a *different* run event is rejected.
        """
        if not batch:
            return AppendResult()
        idx = list(indexes) if indexes is not None else list(range(len(batch)))
        # Optimistic first: no pre-check query; the insert skips what a unique index already holds
        # (ON CONFLICT DO NOTHING) and says so. Then the transaction is rolled back and the batch
        # redone with those events (or, on SQLite, the whole batch) checked against the store, so
        # retries and conflicts are told apart. A batch of new events costs no lookup at all.
        probe: _Probe | None = None
        for _attempt in range(_ATTEMPTS):
            learnt: dict[str, int] = {}  # tag set ids this transaction read or added
            try:
                if self._write_lock is not None:
                    with self._write_lock, self.engine.begin() as conn:
                        result, rows = self._append(conn, batch, idx, probe, learnt)
                else:
                    with self.engine.begin() as conn:
                        result, rows = self._append(conn, batch, idx, probe, learnt)
            except _Collision as hit:
                # Some events are stored already (a retry, a conflict, or a concurrent writer
                # storing the same events or runs between our attempts): check those and redo.
                probe = hit.probe if probe is None else probe.union(hit.probe)
                continue
            except IntegrityError:
                # Another unique row (a run's tags) stored concurrently: check everything and redo.
                probe = _Probe(None, None)
                continue
            self._tag_sets.commit(learnt)
            self._after_commit(rows)
            return result
        raise IntegrityError("append", None, RuntimeError(f"batch still colliding after {_ATTEMPTS} attempts"))

    def _after_commit(self, rows: list[StoredEvent]) -> None:
        # Observers (telemetry) see each newly stored event exactly once, after it is durable;
        # duplicates and rejected events never reach them. They must not fail the write.
        if not rows:
            return
        for hook in self.commit_hooks:
            try:
                hook(rows)
            except Exception:  # noqa: BLE001 - the data is stored; an observer's failure is logged
                log.exception("event store: commit hook %r failed", hook)

    def _append(
        self, conn: Connection, batch: Sequence[RunEvent], idx: list[int], probe: _Probe | None,
        learnt: dict[str, int],
    ) -> tuple[AppendResult, list[StoredEvent]]:
        result = AppendResult()
        keyed_reads_only(conn)  # every read below is by a batch's keys: flat as the table grows
        existing: dict[str, Any] = {}
        stored_runs: dict[str, str] = {}
        if probe is not None:
            existing = self._stored_events(conn, probe.event_ids(batch))
            for chunk in chunks(probe.run_ids(batch)):
                found = conn.execute(
                    select(events.c.run_id, events.c.event_id).where(events.c.kind == "run", events.c.run_id.in_(chunk))
                )
                stored_runs.update({r.run_id: r.event_id for r in found})

        seen: dict[str, RunEvent] = {}
        batch_runs: dict[str, RunEvent] = {}
        keep: list[RunEvent] = []
        keep_pos: list[int] = []
        for pos, ev in zip(idx, batch, strict=True):
            stored = existing.get(ev.event_id)
            if stored is not None or ev.event_id in seen:
                # An event_id is an idempotency key: the same content again is a duplicate (a
                # retry); other content under it would silently vanish, so it is a conflict.
                same = _same_content(stored, ev) if stored is not None else seen[ev.event_id] == ev
                if same:
                    result.duplicates += 1
                else:
                    result.rejected.append(Rejection(pos, "event_id", _conflict(ev.event_id)))
                continue
            if ev.kind == "run":
                other = stored_runs.get(ev.run_id)
                if other is None and ev.run_id in batch_runs:
                    other = batch_runs[ev.run_id].event_id
                if other is not None and other != ev.event_id:
                    result.rejected.append(
                        Rejection(
                            pos,
                            "run_id",
                            f"run {ev.run_id!r} is already recorded with different content; run IDs are immutable",
                        )
                    )
                    continue
                batch_runs[ev.run_id] = ev
            seen[ev.event_id] = ev
            keep.append(ev)
            keep_pos.append(pos)
        if not keep:
            return result, []
        # The derived views' writer lock (PostgreSQL) before this batch writes any row, not after:
        # a write can wait on another writer's uncommitted row (the same event_id, a child being
        # backfilled), and that writer must never be waiting on this lock (a deadlock). What
        # follows runs under it anyway (the root causes, the hooks).
        lock_writers(conn)
        # Raw events before the retention watermark were deleted: an event there may be a retry of
        # one, which can no longer be told from a new event and would be counted twice. Read under
        # the writers' lock, which a prune holds to raise it and to delete: either the watermark
        # is seen here, or no event of this batch's period has been deleted yet.
        pruned_before = retention.pruned_before_ns(conn)
        if pruned_before is not None and any(ev.start_time_unix_nano < pruned_before for ev in keep):
            for pos, ev in zip(keep_pos, keep, strict=True):
                if ev.start_time_unix_nano < pruned_before:
                    result.rejected.append(Rejection(pos, "start_time", _before_retention(pruned_before)))
            result.rejected.sort(key=lambda r: r.index)
            keep = [ev for ev in keep if ev.start_time_unix_nano >= pruned_before]
            batch_runs = {k: r for k, r in batch_runs.items() if r.start_time_unix_nano >= pruned_before}
            if not keep:
                return result, []

        # Children stored before their run arrived get the run's dimensions now (and, when they
        # failed, their failure cluster recomputed) before the run's rollups count them.
        updates = [
            {"r_id": r.run_id, **{f"d_{k}": getattr(r, k) for k in INHERITED}}
            for r in batch_runs.values()
            if any(getattr(r, k) is not None for k in INHERITED)
        ]
        if updates:
            self._backfill_dimensions(conn, updates)

        # Children inherit project/scenario/model from their run: from this batch, else from the store.
        need = {e.run_id for e in keep if e.kind != "run" and e.run_id not in batch_runs and _missing(e)}
        stored_dims = self._run_dimensions(conn, need) if need else {}
        rows: list[StoredEvent] = []
        enrich = self.enricher
        for ev in keep:
            row = stored_event(ev)
            if ev.kind != "run" and _missing(ev):
                run = batch_runs.get(ev.run_id)
                src = _dims_of(run) if run is not None else stored_dims.get(ev.run_id)
                if src:
                    columns = cast(dict[str, Any], row)  # the inherited dimensions, by name
                    for k in INHERITED:
                        if columns[k] is None:
                            columns[k] = src.get(k)
            if enrich is not None:
                got = enrich(row)
                row["failure_class"], row["cluster_id"] = got.get("failure_class"), got.get("cluster_id")
            rows.append(row)
        # Root causes once the children's classes are settled (re-enriched above), before insert.
        reattributed = attribute_batch(conn, rows, self.attributor) if self.attributor is not None else {}
        self._insert_events(conn, rows, learnt)
        # One driver-level statement (as the events'), not SQLAlchemy's per-row parameter processing;
        # a tag row stored concurrently still raises IntegrityError (the redo below).
        tag_rows = [(e.run_id, k, v) for e in batch_runs.values() for k, v in e.tags]
        bulk_write(conn, run_tags, ("run_id", "key", "value"), tag_rows)
        try:
            for hook in self.append_hooks:
                hook(conn, rows, reattributed)
        finally:
            run_batches.forget(conn)
        result.accepted = len(rows)
        return result, rows

    def _insert_events(self, conn: Connection, rows: list[StoredEvent], learnt: dict[str, int]) -> None:
        # The hot path of ingest: one bulk statement per batch (see store.dialect), skipping rows a
        # unique index already holds; any skipped row means the batch must be checked and redone.
        # The tags JSON is stored as its set's id (store/tag_sets.py); the rows keep the text.
        cols = ["tag_set" if c == "tags" else c for c in rows[0]]
        at = cols.index("tag_set")
        ids = self._tag_sets.ids(conn, (r["tags"] for r in rows if r["tags"] != EMPTY_TAGS), learnt)
        values = []
        for r in rows:
            v: list[Any] = list(r.values())
            v[at] = ids.get(v[at])  # None for {}
            values.append(v)
        skipped = insert_new(conn, events, cols, values, "event_id")
        if skipped is None:  # SQLite cannot say which: check them all
            raise _Collision(_Probe(None, None))
        if skipped:
            runs_hit = {r["run_id"] for r in rows if r["kind"] == "run" and r["event_id"] in skipped}
            raise _Collision(_Probe(frozenset(skipped), frozenset(runs_hit)))

    def _stored_events(self, conn: Connection, event_ids: list[str]) -> dict[str, Any]:
        """The stored rows of those of ``event_ids`` already stored (usually none: retries are rare)."""
        found: dict[str, Any] = {}
        for chunk in chunks(event_ids):
            rows = conn.execute(select(*_EVENT_COLUMNS).where(events.c.event_id.in_(chunk)))
            found.update((r.event_id, r._mapping) for r in rows)
        return found

    def _run_dimensions(self, conn: Connection, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for chunk in chunks(list(run_ids)):
            q = select(events.c.run_id, *(events.c[k] for k in INHERITED)).where(
                events.c.kind == "run", events.c.run_id.in_(chunk)
            )
            for r in conn.execute(q):
                out[r.run_id] = {k: getattr(r, k) for k in INHERITED}
        return out

    def _backfill_dimensions(self, conn: Connection, updates: list[dict[str, Any]]) -> None:
        # Usually a run's children came before it in the same batch and inherited already; find
        # the runs that really have stored children lacking a dimension before updating any.
        by_run = {u["r_id"]: u for u in updates}
        lacking: set[str] = set()
        for chunk in chunks(list(by_run)):
            q = (
                select(events.c.run_id)
                .distinct()
                .where(
                    events.c.run_id.in_(chunk),
                    events.c.kind != "run",
                    or_(*(events.c[k].is_(None) for k in INHERITED)),
                )
            )
            lacking.update(conn.execute(q).scalars())
        if not lacking:
            return
        for k in INHERITED:
            stmt = (
                update(events)
                .where(events.c.run_id == bindparam("r_id"), events.c.kind != "run", events.c[k].is_(None))
                .values({k: bindparam(f"d_{k}")})
            )
            params = [by_run[r] for r in lacking if by_run[r][f"d_{k}"] is not None]
            if params:
                conn.execute(stmt, params)
        if self.enricher is not None:
            self._reenrich_failed_children(conn, sorted(lacking))

    def _reenrich_failed_children(self, conn: Connection, run_ids: list[str]) -> None:
        # Classification reads the stored dimensions, so a child that just inherited them is
        # classified again: the stored cluster is then the same whatever order events arrived in.
        enrich = self.enricher
        assert enrich is not None  # noqa: S101 - only called with an enricher

        def relabel(row: Any) -> tuple[str | None, str | None]:
            got = enrich(dict(row))
            return got.get("failure_class"), got.get("cluster_id")

        set_failure_labels(conn, failed_children(conn, run_ids), relabel)

    # -- reads -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run (its run event, or a placeholder while it is still open) and its trace, in order."""
        with self.read() as conn:
            return runs.get_run(conn, run_id)

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

    def list_runs(self, filters: Filters, *, limit: int = 50, cursor: str | None = None) -> RunPage:
        """Runs matching ``filters``, newest first, keyset-paginated."""
        with self.read() as conn:
            return runs.list_runs(conn, filters, limit=limit, cursor=cursor)

    def retention_watermark(self) -> retention.Watermark | None:
        """The retention watermark (raw events of runs started before it were pruned), or None."""
        with self.read() as conn:
            return retention.watermark(conn)

    def prune(
        self, cutoff_ns: int, *, now_ns: int, runs_per_transaction: int = 2_000,
        progress: Callable[[int, int], None] | None = None,
    ) -> retention.PruneResult:
        """Delete the raw events of runs started before ``cutoff_ns`` (see :mod:`~hypermindlabs.store.retention`)."""
        # Maintenance reads (the scan for orphans) run without the read deadline of a request.
        return retention.prune(self.transaction, self.engine.connect, cutoff_ns, now_ns=now_ns,
                               runs_per_transaction=runs_per_transaction, progress=progress)  # fmt: skip

    def prune_plan(self, cutoff_ns: int) -> retention.PrunePlan:
        """What :meth:`prune` to ``cutoff_ns`` would delete (counted without a read deadline)."""
        with self.engine.connect() as conn:
            return retention.plan(conn, cutoff_ns)

    def relabel_failures(
        self, relabel: failures.Relabel, *, batch: int = 5000, progress: Callable[[int], Any] | None = None
    ) -> tuple[int, int]:
        """Run ``relabel`` over every stored failed event; (examined, changed)."""
        return failures.relabel_failures(self.engine, relabel, batch=batch, progress=progress)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction for work the store's owner runs on its tables (a rollup rebuild);
        serialized with the store's own writers on SQLite."""
        if self._write_lock is not None:
            with self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def rollup_reader(self) -> Iterator[RollupReader]:
        """A reader of rollup cells on one connection (one snapshot for one answer), under the read deadline."""
        with self.read() as conn:
            yield RollupReader(begin_snapshot(conn))

    def dimension_values(self, *, limit: int = 500) -> dict[str, Any]:
        """Every project, model, tool, scenario and tag value stored (from the rollup slices), sorted."""
        from hypermindlabs.store.dimensions import dimension_values

        with self.read() as conn:
            return dimension_values(conn, limit=limit)

    def cluster_rows(
        self, filters: Filters, *, prev_from_ns: int, from_ns: int, to_ns: int, tag_keys: Sequence[str]
    ) -> failures.ClusterRows:
        """Failed runs and failed steps behind a cluster report (see :mod:`hypermindlabs.store.failures`)."""
        return failures.cluster_rows(
            self.engine, filters, prev_from_ns=prev_from_ns, from_ns=from_ns, to_ns=to_ns, tag_keys=tag_keys
        )

    def failure_texts(self, seqs: Sequence[int]) -> dict[int, tuple[str | None, str | None, str | None]]:
        """(error_type, error_message, error_class) of stored events by ``seq``."""
        return failures.failure_texts(self.engine, seqs)

    def reattribute_failed_runs(
        self, attribute: Attributor, *, batch: int = 5000, progress: Callable[[int], Any] | None = None
    ) -> tuple[int, int]:
        """Attribute every stored failed run again to its root cause; (examined, changed)."""
        return attribution.reattribute_failed_runs(self.engine, attribute, batch=batch, progress=progress)

    def run_ids(self, filters: Filters) -> list[str]:
        """Every run ID matching ``filters`` (for tests and exact drill-down checks)."""
        with self.read() as conn:
            return runs.run_ids(conn, filters)

    def otlp_traces(self) -> OtlpTraces:
        """The OTLP ingest's trace state (roots awaited, held spans), on this store's engine."""
        return OtlpTraces(self.engine)

    def alerts(self) -> AlertStore:
        """The alerts Alertmanager's webhook delivered, on this store's engine."""
        return AlertStore(self.engine)


_DERIVED_COLUMNS = frozenset({"failure_class", "cluster_id"})
_EVENT_COLUMNS = event_columns()  # every stored column, tags as JSON text (built once)


def _same_content(stored: Any, ev: RunEvent) -> bool:
    """Whether a stored row holds ``ev``: every column the event sets, except what the store
    derives (failure class, cluster) and the dimensions a child inherited from its run."""
    for key, value in stored_event(ev).items():
        if key in _DERIVED_COLUMNS or (value is None and ev.kind != "run" and key in INHERITED):
            continue
        got = stored[key]
        if (bool(got) if key == "tokens_estimated" else got) != value:
            return False
    return True


def _conflict(event_id: str) -> str:
    return (
        f"event {event_id[:64]!r} is already recorded with different content; an event_id is an idempotency "
        "key: resend the same content, or give a different event a new event_id"
    )


def _before_retention(pruned_before_ns: int) -> str:
    return (
        f"starts before the retention watermark {format_timestamp(pruned_before_ns)}: the raw events of runs "
        "started before it were pruned, so this event cannot be checked for duplicates and is not stored"
    )


def _missing(ev: RunEvent) -> bool:
    return ev.project is None or ev.scenario is None or ev.model is None


def _dims_of(ev: RunEvent) -> dict[str, Any]:
    return {k: getattr(ev, k) for k in INHERITED}


_ATTEMPTS = 4


@dataclass(frozen=True)
class _Probe:
    """Which of a batch's events and runs to check against the store (None: all of them)."""

    event_id_set: frozenset[str] | None
    run_id_set: frozenset[str] | None

    def event_ids(self, batch: Sequence[RunEvent]) -> list[str]:
        ids = dict.fromkeys(e.event_id for e in batch)
        return list(ids) if self.event_id_set is None else [i for i in ids if i in self.event_id_set]

    def run_ids(self, batch: Sequence[RunEvent]) -> list[str]:
        ids = dict.fromkeys(e.run_id for e in batch if e.kind == "run")
        return list(ids) if self.run_id_set is None else [i for i in ids if i in self.run_id_set]

    def union(self, other: _Probe) -> _Probe:
        def join(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
            return None if a is None or b is None else a | b

        return _Probe(join(self.event_id_set, other.event_id_set), join(self.run_id_set, other.run_id_set))


class _Collision(Exception):  # noqa: N818 - control flow inside append, never raised out of it
    """The optimistic insert skipped rows already stored: roll back and redo with ``probe`` checked."""

    def __init__(self, probe: _Probe) -> None:
        super().__init__("events already stored")
        self.probe = probe
