"""Reading and relabelling stored failures: the rows failure clusters are computed from.

Triage owns the meaning (classification, clusters, trends: :mod:`hypermindlabs.triage`); this
module owns the SQL. A relabel function is passed in, so the store never imports triage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, literal_column, select, update
from sqlalchemy.engine import Connection, Engine

from hypermindlabs.core.filters import Filters
from hypermindlabs.core.vocabulary import chunks
from hypermindlabs.store.runs import run_conditions
from hypermindlabs.store.schema import events, run_tags

__all__ = [
    "Relabel", "set_failure_labels", "relabel_failures",
    "FailedRunRow", "FailedStepRow", "ClusterRows", "cluster_rows", "failure_texts",
]  # fmt: skip

#: A failed event's columns → its (failure_class, cluster_id).
Relabel = Callable[[Mapping[str, Any]], tuple[str | None, str | None]]


class FailedRunRow(NamedTuple):
    """A failed run with its root cause's labels (store.attribution) and its own error."""

    run_id: str
    start_ns: int
    model: str | None
    scenario: str | None
    cluster_id: str | None
    failure_class: str | None
    kind: str
    tool: str | None
    error_type: str | None  # None until read for the cluster's example (failure_texts)
    error_message: str | None
    error_class: str | None
    seq: int


class FailedStepRow(NamedTuple):
    """A failed, clustered step with its run's outcome, start, model and scenario."""

    cluster_id: str
    failure_class: str | None
    run_id: str
    kind: str
    tool: str | None
    model: str | None
    error_type: str | None
    error_message: str | None
    error_class: str | None
    run_status: str
    run_start: int
    run_model: str | None
    run_scenario: str | None
    seq: int


@dataclass
class ClusterRows:
    """What a cluster report needs from the store, for the window and the one before it."""

    failed_runs: list[FailedRunRow]
    failed_steps: list[FailedStepRow]
    first_seen: dict[str, int] = field(default_factory=dict)
    last_seen: dict[str, int] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))


# SQLite's planner takes the narrower ix_runs_start for the window's runs and then reads every
# run's table row for its status and dimensions; ix_runs_start_outcome holds them (3-5x faster at
# 1M events). SQLAlchemy renders no SQLite index hints, so the compiled text gets it.
_RUNS_ALIAS = "events AS r"
_RUNS_HINTED = "events AS r INDEXED BY ix_runs_start_outcome"


def _execute_runs_hinted(conn: Connection, stmt: Any) -> Any:
    if conn.dialect.name != "sqlite":
        return conn.execute(stmt)
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    sql = str(compiled)
    if sql.count(_RUNS_ALIAS) != 1:
        return conn.execute(stmt)
    return conn.exec_driver_sql(
        sql.replace(_RUNS_ALIAS, _RUNS_HINTED), tuple(compiled.params[name] for name in compiled.positiontup or ())
    )


def cluster_rows(
    engine: Engine, filters: Filters, *, prev_from_ns: int, from_ns: int, to_ns: int, tag_keys: Sequence[str]
) -> ClusterRows:
    """Failed runs and failed steps of runs matching ``filters`` that started in ``[prev_from, to)``,
    each current cluster's first and last sighting ever, and the ``tag_keys`` tags of the current
    window's failed and recovered runs."""
    r = events.alias("r")
    e = events.alias("e")
    base = replace(filters, from_ns=prev_from_ns, to_ns=to_ns, extra={}, status=(), error_class=(), cluster=())
    # kind = 'run' as a literal: an index named in the SQL must be provably usable when the
    # statement is prepared, before parameters are bound (a partial index on kind = 'run').
    cond = [r.c.kind == literal_column("'run'"), *run_conditions(r, base)]
    # Labels and dimensions only, from ix_runs_start_outcome and ix_events_failed_cluster (migration
    # 0015) without the table; the error texts are read for one example per cluster (failure_texts).
    runs_stmt = select(
        r.c.run_id, r.c.start_ns, r.c.model, r.c.scenario, r.c.cluster_id, r.c.failure_class,
        r.c.kind, r.c.tool, r.c.seq,
    ).where(*cond, r.c.status == "error")  # fmt: skip
    steps_stmt = (
        select(e.c.cluster_id, e.c.failure_class, e.c.run_id, e.c.kind, e.c.tool, e.c.model,
               r.c.status, r.c.start_ns, r.c.model, r.c.scenario, e.c.seq)
        .select_from(e.join(r, r.c.run_id == e.c.run_id))
        .where(e.c.kind != "run", e.c.status == "error", e.c.cluster_id.is_not(None), *cond)
    )  # fmt: skip
    with engine.connect() as conn:
        out = ClusterRows(
            failed_runs=[
                FailedRunRow(rid, start, model, scenario, cid, cls, kind, tool, None, None, None, seq)
                for rid, start, model, scenario, cid, cls, kind, tool, seq in _execute_runs_hinted(conn, runs_stmt)
            ],
            failed_steps=[
                FailedStepRow(cid, cls, rid, kind, tool, model, None, None, None, status, start, rmodel, rscen, seq)
                for cid, cls, rid, kind, tool, model, status, start, rmodel, rscen, seq in _execute_runs_hinted(
                    conn, steps_stmt
                )
            ],
        )
        current = {x.cluster_id for x in out.failed_runs if x.start_ns >= from_ns and x.cluster_id}
        current |= {x.cluster_id for x in out.failed_steps if x.run_start >= from_ns}
        for chunk in chunks(sorted(current)):
            for cid, lo, hi in conn.execute(
                select(events.c.cluster_id, func.min(events.c.start_ns), func.max(events.c.start_ns))
                .where(events.c.cluster_id.in_(chunk))
                .group_by(events.c.cluster_id)
            ):
                out.first_seen[cid], out.last_seen[cid] = lo, hi
        run_ids = {x.run_id for x in out.failed_runs if x.start_ns >= from_ns}
        run_ids |= {x.run_id for x in out.failed_steps if x.run_start >= from_ns and x.run_status == "ok"}
        # By run id alone (the primary key), keys filtered here: with ``key IN (...)`` in the SQL,
        # SQLite took ix_run_tags_key_value and walked every run's tag of those keys per chunk
        # (2.2 of 3.5 s at 1M events).
        wanted = set(tag_keys)
        for chunk in chunks(sorted(run_ids)):
            for rid, key, value in conn.execute(
                select(run_tags.c.run_id, run_tags.c.key, run_tags.c.value).where(run_tags.c.run_id.in_(chunk))
            ):
                if key in wanted:
                    out.tags[rid][key] = value
    return out


def failure_texts(engine: Engine, seqs: Sequence[int]) -> dict[int, tuple[str | None, str | None, str | None]]:
    """(error_type, error_message, error_class) of the stored events with these ``seq``."""
    out: dict[int, tuple[str | None, str | None, str | None]] = {}
    with engine.connect() as conn:
        for chunk in chunks(sorted(set(seqs))):
            stmt = select(events.c.seq, events.c.error_type, events.c.error_message, events.c.error_class)
            for seq, error_type, message, error_class in conn.execute(stmt.where(events.c.seq.in_(chunk))):
                out[seq] = (error_type, message, error_class)
    return out


_SET_LABELS = (
    update(events)
    .where(events.c.seq == bindparam("k_seq"))
    .values(failure_class=bindparam("n_class"), cluster_id=bindparam("n_cluster"))
)
#: The columns a relabel function reads.
RELABEL_COLUMNS: tuple[str, ...] = (
    "seq", "run_id", "kind", "status", "start_ns", "tool", "model", "error_type", "error_message", "error_class",
    "failure_class", "cluster_id",
)  # fmt: skip


def set_failure_labels(conn: Connection, rows: Sequence[Mapping[str, Any]], relabel: Relabel) -> int:
    """Relabel stored failed events (column mappings with ``seq``) whose labels changed; returns how many."""
    ups = []
    for r in rows:
        cls, cluster = relabel(r)
        if (cls, cluster) != (r["failure_class"], r["cluster_id"]):
            ups.append({"k_seq": r["seq"], "n_class": cls, "n_cluster": cluster})
    if ups:
        conn.execute(_SET_LABELS, ups)
    return len(ups)


def failed_children(conn: Connection, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The failed child events of ``run_ids`` (to relabel after they inherited their run's dimensions)."""
    cols = [events.c[k] for k in RELABEL_COLUMNS]
    out: list[dict[str, Any]] = []
    for chunk in chunks(run_ids):
        q = select(*cols).where(events.c.run_id.in_(chunk), events.c.kind != "run", events.c.status == "error")
        out.extend(dict(r._mapping) for r in conn.execute(q))
    return out


def relabel_failures(
    engine: Engine, relabel: Relabel, *, batch: int = 5000, progress: Callable[[int], Any] | None = None
) -> tuple[int, int]:
    """Run ``relabel`` over every stored failed event, one transaction per batch.

    Returns (failed events examined, rows changed).
    """
    examined = changed = 0
    last = 0
    cols = [events.c[k] for k in RELABEL_COLUMNS]
    while True:
        with engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(*cols).where(events.c.seq > last, events.c.status == "error").order_by(events.c.seq).limit(batch)
            )]  # fmt: skip
            if not rows:
                break
            last = rows[-1]["seq"]
            changed += set_failure_labels(conn, rows, relabel)
            examined += len(rows)
        if progress is not None:
            progress(len(rows))
    return examined, changed
