"""Root-cause attribution in the append transaction: the SQL around an injected, pure rule.

A failed run's stored ``failure_class`` and ``cluster_id`` are those of its root cause (the rule
is :func:`hypermindlabs.triage.attribution.root_cause`, injected as an :data:`Attributor`), so
everything that reads runs — rollups, the run list's ``error_class=``/``cluster=`` filters, the
clusters API — counts each failed run once. The rule is a function of the run's stored events,
and it is re-applied whenever a batch brings a failed run or a child of a stored failed run: the
answer is the same in any arrival order. A stored run whose attribution changes is reported to
the append hooks with its previous values, so they retract and re-add in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection, Engine

from hypermindlabs.core.record import StoredEvent
from hypermindlabs.core.vocabulary import chunks
from hypermindlabs.store.rollup_cells import lock_writers
from hypermindlabs.store.schema import events

__all__ = [
    "Attributor", "Reattribution", "ATTRIBUTION_FIELDS", "attribute_batch",
    "reattribute_failed_runs",
]  # fmt: skip

#: (run row, its child rows) -> {"failure_class": ..., "cluster_id": ...} of the run's root cause.
Attributor = Callable[[Mapping[str, Any], Sequence[Mapping[str, Any]]], Mapping[str, Any]]

#: The columns the rule and the run's own classification read.
ATTRIBUTION_FIELDS: tuple[str, ...] = (
    "event_id", "run_id", "kind", "span_id", "parent_span_id", "status", "start_ns", "end_ns", "tool",
    "model", "error_type", "error_message", "error_class", "failure_class", "cluster_id",
)  # fmt: skip


@dataclass(frozen=True)
class Reattribution:
    """A stored failed run whose root cause changed in this transaction (a late child arrived)."""

    run_id: str
    old_class: str | None
    old_cluster: str | None
    new_class: str | None
    new_cluster: str | None


def attribute_batch(conn: Connection, rows: Sequence[StoredEvent], attribute: Attributor) -> dict[str, Reattribution]:
    """Attribute the failed runs this batch touches; call before the batch's rows are inserted.

    New run rows in ``rows`` get their root cause written into the row; stored runs are updated
    and returned (run_id -> :class:`Reattribution`).
    """
    new_runs = {r["run_id"]: r for r in rows if r["kind"] == "run"}
    children: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["kind"] != "run":
            children.setdefault(r["run_id"], []).append(r)
    if not children and not any(r["status"] == "error" for r in new_runs.values()):
        return {}
    # Under the writers' lock (the rollup writers', PostgreSQL), so a concurrent batch holding this
    # run's other events has either committed (and is read below) or will read ours.
    lock_writers(conn)
    cols = [events.c[k] for k in ATTRIBUTION_FIELDS]
    stored_runs: dict[str, dict[str, Any]] = {}
    late = [rid for rid in children if rid not in new_runs]
    for chunk in chunks(late):
        q = select(*cols).where(events.c.kind == "run", events.c.status == "error", events.c.run_id.in_(chunk))
        stored_runs.update({m["run_id"]: dict(m) for m in (row._mapping for row in conn.execute(q))})
    targets = [rid for rid, r in new_runs.items() if r["status"] == "error"] + list(stored_runs)
    if not targets:
        return {}
    earlier: dict[str, list[Mapping[str, Any]]] = {}
    for chunk in chunks(targets):
        q = select(*cols).where(events.c.kind != "run", events.c.run_id.in_(chunk))
        for row in conn.execute(q):
            earlier.setdefault(row.run_id, []).append(dict(row._mapping))
    changed: dict[str, Reattribution] = {}
    for rid in targets:
        fresh = new_runs.get(rid)
        run: Mapping[str, Any] = fresh if fresh is not None else stored_runs[rid]
        got = attribute(run, earlier.get(rid, []) + children.get(rid, []))
        new_class, new_cluster = got.get("failure_class"), got.get("cluster_id")
        if fresh is not None:
            fresh["failure_class"], fresh["cluster_id"] = new_class, new_cluster
        elif (new_class, new_cluster) != (run["failure_class"], run["cluster_id"]):
            changed[rid] = Reattribution(rid, run["failure_class"], run["cluster_id"], new_class, new_cluster)
    if changed:
        write_run_attributions(conn, changed.values())
    return changed


def write_run_attributions(conn: Connection, changes: Iterable[Reattribution]) -> None:
    stmt = (
        update(events)
        .where(events.c.kind == "run", events.c.run_id == bindparam("k_run"))
        .values(failure_class=bindparam("n_class"), cluster_id=bindparam("n_cluster"))
    )
    params = [{"k_run": c.run_id, "n_class": c.new_class, "n_cluster": c.new_cluster} for c in changes]
    if params:
        conn.execute(stmt, params)


def reattribute_failed_runs(
    engine: Engine, attribute: Attributor, *, batch: int = 5000, progress: Callable[[int], Any] | None = None
) -> tuple[int, int]:
    """Attribute every stored failed run again (after reclassification): (runs examined, changed).

    Rollups count runs by their class: rebuild them when anything changed.
    """
    examined = changed = 0
    last = 0
    cols = [events.c.seq, *(events.c[k] for k in ATTRIBUTION_FIELDS)]
    while True:
        with engine.begin() as conn:
            lock_writers(conn)
            runs = [dict(r._mapping) for r in conn.execute(
                select(*cols).where(events.c.seq > last, events.c.kind == "run", events.c.status == "error")
                .order_by(events.c.seq).limit(batch)
            )]  # fmt: skip
            if not runs:
                break
            last = runs[-1]["seq"]
            kids: dict[str, list[dict[str, Any]]] = {}
            for chunk in chunks([r["run_id"] for r in runs]):
                q = select(*(events.c[k] for k in ATTRIBUTION_FIELDS)).where(
                    events.c.kind != "run", events.c.run_id.in_(chunk)
                )
                for row in conn.execute(q):
                    kids.setdefault(row.run_id, []).append(dict(row._mapping))
            ups = []
            for run in runs:
                got = attribute(run, kids.get(run["run_id"], []))
                new = (got.get("failure_class"), got.get("cluster_id"))
                if new != (run["failure_class"], run["cluster_id"]):
                    ups.append(Reattribution(run["run_id"], run["failure_class"], run["cluster_id"], *new))
            write_run_attributions(conn, ups)
            examined += len(runs)
            changed += len(ups)
        if progress is not None:
            progress(len(runs))
    return examined, changed
