"""SQL of the exported-series view (``export_series``) and its windowed label admissions (``export_labels``).

The view is written in the append transaction by :mod:`hypermindlabs.export.view` and read by
``/metrics``; the policy (which series, which labels) is the export package's, the statements are
here. Writers hold the store's writer lock (the key the rollups hold), so on PostgreSQL two batches
touching one run see each other's committed events, and admissions are serialized.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Set
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.engine import Connection

from hypermindlabs.core.vocabulary import chunks
from hypermindlabs.store.dialect import advisory_xact_lock, bulk_write, lock_tables_exclusive
from hypermindlabs.store.schema import events, export_labels, export_series

__all__ = [
    "WRITER_LOCK_KEY", "EXPORT_FIELDS", "SERIES_COLUMNS", "lock_writers", "fetch_runs",
    "write_series", "drop_empty", "read_series", "clear_series", "run_pages", "active_labels", "admit_label",
    "admit_labels", "touch_labels",
]  # fmt: skip

#: The rollups' writer lock key (rollups/writer.py): one lock for everything derived from a run.
WRITER_LOCK_KEY = 0x68_6D_72_6F_6C_6C  # "hmroll"
#: The event columns the exported series are computed from.
EXPORT_FIELDS: tuple[str, ...] = (
    "event_id", "run_id", "trace_id", "kind", "start_ns", "end_ns", "status", "project", "scenario", "model",
    "tool", "input_tokens", "output_tokens", "input_chars", "output_chars", "tokens_estimated", "error_type",
    "error_class", "failure_class", "cluster_id", "attributes",
)  # fmt: skip
SERIES_COLUMNS: tuple[str, ...] = (
    "series_id", "slot", "metric", "labels", "value", "ex_ts_ns", "ex_run_id", "ex_trace_id", "ex_value",
)  # fmt: skip


def lock_writers(conn: Connection) -> None:
    advisory_xact_lock(conn, WRITER_LOCK_KEY)


def fetch_runs(
    conn: Connection, run_ids: Iterable[str], *, exclude: Set[str] = frozenset()
) -> dict[str, list[dict[str, Any]]]:
    """Every stored event of ``run_ids`` (but ``exclude``), by run."""
    out: dict[str, list[dict[str, Any]]] = {}
    cols = [events.c[k] for k in EXPORT_FIELDS]
    for chunk in chunks(list(run_ids)):
        for row in conn.execute(select(*cols).where(events.c.run_id.in_(chunk))):
            m = row._mapping
            if m["event_id"] not in exclude:
                out.setdefault(m["run_id"], []).append(dict(m))
    return out


def write_series(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """UPSERT (``SERIES_COLUMNS`` tuples, unique keys): value += delta, exemplar = the newer one."""
    bulk_write(
        conn, export_series, SERIES_COLUMNS, sorted(rows, key=lambda r: (r[0], r[1])), conflict="add_latest",
        keys=("series_id", "slot"), add=("value",), latest=("ex_ts_ns", "ex_run_id", "ex_trace_id", "ex_value"),
    )  # fmt: skip


def drop_empty(conn: Connection, keys: Iterable[tuple[int, int]]) -> None:
    """Delete rows a retraction brought back to zero, so the table holds what a rebuild writes."""
    params = [{"s": s, "k": k} for s, k in keys]
    if params:
        c = export_series.c
        conn.execute(
            delete(export_series).where(c.series_id == bindparam("s"), c.slot == bindparam("k"), c.value == 0), params
        )


def read_series(conn: Connection) -> list[Any]:
    """Every row of the view, in series then slot order (what ``/metrics`` renders)."""
    c = export_series.c
    return list(conn.execute(select(*(c[k] for k in SERIES_COLUMNS)).order_by(c.metric, c.series_id, c.slot)))


def clear_series(conn: Connection) -> None:
    """Empty the view for a rebuild; writers wait until the rebuild commits (readers go on)."""
    lock_writers(conn)
    lock_tables_exclusive(conn, (export_series,))
    conn.execute(delete(export_series))


def run_pages(conn: Connection, page: int = 2000) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """All stored runs with all their events, a page of runs at a time (start time order)."""
    e = events.c
    last: tuple[int, int] | None = None
    while True:
        q = select(e.start_ns, e.seq, e.run_id).where(e.kind == "run")
        if last is not None:
            q = q.where(or_(e.start_ns > last[0], and_(e.start_ns == last[0], e.seq > last[1])))
        rows = conn.execute(q.order_by(e.start_ns, e.seq).limit(page)).all()
        if not rows:
            return
        last = (rows[-1].start_ns, rows[-1].seq)
        by_run = fetch_runs(conn, [r.run_id for r in rows])
        yield {r.run_id: by_run.get(r.run_id, []) for r in rows}


# -- windowed label admissions ----------------------------------------------------------------------
def active_labels(conn: Connection, label: str, since_ns: int) -> dict[str, int]:
    """The values of ``label`` seen at or after ``since_ns``: value → last seen (ns)."""
    c = export_labels.c
    q = select(c.value, c.last_seen_ns).where(c.label == label, c.last_seen_ns >= since_ns)
    return {r.value: int(r.last_seen_ns) for r in conn.execute(q)}


def admit_label(conn: Connection, label: str, value: str, now_ns: int) -> None:
    """Admit ``value`` (or mark it seen again): the caller checked the budget under the writer lock."""
    admit_labels(conn, label, [value], now_ns)


def admit_labels(conn: Connection, label: str, values: Sequence[str], now_ns: int) -> None:
    """Admit each of ``values`` (distinct; or mark it seen again, when an expired row holds it)."""
    if not values:
        return
    bulk_write(
        conn, export_labels, ("label", "value", "admitted_ns", "last_seen_ns"),
        [(label, v, now_ns, now_ns) for v in values], conflict="ignore", keys=("label", "value"),
    )  # fmt: skip
    touch_labels(conn, label, values, now_ns)


def touch_labels(conn: Connection, label: str, values: Sequence[str], now_ns: int) -> None:
    if not values:
        return
    c = export_labels.c
    stmt = (
        update(export_labels)
        .where(c.label == label, c.value == bindparam("v"), c.last_seen_ns < bindparam("now"))
        .values(last_seen_ns=bindparam("now"))
    )
    conn.execute(stmt, [{"v": v, "now": now_ns} for v in values])
