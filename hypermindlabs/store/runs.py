"""Reading runs: one run's trace, filtered run listings with keyset pagination, drill-down conditions.

Functions of a connection; :class:`~hypermindlabs.store.EventStore` exposes them as methods.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, func, literal, literal_column, or_, select, tuple_, union_all
from sqlalchemy.engine import Connection

from hypermindlabs.core.errors import QueryError
from hypermindlabs.core.events import MAX_TIME_NS, MIN_TIME_NS
from hypermindlabs.core.filters import Filters
from hypermindlabs.core.record import event_json
from hypermindlabs.core.vocabulary import PAGE_LIMIT_MAX, RUN_DIMENSIONS
from hypermindlabs.store.schema import events, run_tags
from hypermindlabs.store.tag_sets import event_columns

__all__ = ["RunPage", "get_run", "list_runs", "run_ids", "run_conditions"]


# The listed runs and their tool-call count, built once (an alias builds its column collection on
# first use: per request, that was a tenth of a 1000-run page). The count reads the listed run's own
# entries of ix_events_run_kind_tool (run_id, kind): an index-only lookup per listed run, never a
# walk over every tool event.
_LISTED = events.alias("r")
_CALLS = events.alias("c")
# Constants written into the statement, not bound: SQLite then knows a row's kind and status from
# a partial index whose WHERE states them (``kind = 'run'``, ``status = 'error'``) and reads no row
# to check them; bound, the cluster page's pick took twice as long (46 against 20 ms at 10M).
_RUN: Any = literal_column("'run'")
_ERROR: Any = literal_column("'error'")
_OK: Any = literal_column("'ok'")
# The page's runs picked by (start, seq) first, when the filter sorts (cluster: failed, ok runs).
_PAGED_FAILED = events.alias("pf")
_PAGED_OK = events.alias("po")
_LISTED_COLUMNS = event_columns(_LISTED)
_TRACE_COLUMNS = event_columns(events)
_TOOL_CALLS = select(func.count()).where(_CALLS.c.run_id == _LISTED.c.run_id, _CALLS.c.kind == "tool").scalar_subquery()


@dataclass(frozen=True)
class RunPage:
    runs: list[dict[str, Any]]
    next_cursor: str | None


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """The run (its run event, or a placeholder while it is still open) and its trace, in order."""
    result = conn.execute(
        select(*_TRACE_COLUMNS)
        .where(events.c.run_id == run_id)
        .order_by(events.c.start_ns, (events.c.kind == "run").desc(), events.c.end_ns.desc(), events.c.seq)
    )
    names = list(result.keys())
    rows = result.all()
    if not rows:
        return None
    evs = [event_json(dict(zip(names, r, strict=True))) for r in rows]
    run = next((e for e in evs if e["kind"] == "run"), None)
    return {"run_id": run_id, "run": run, "complete": run is not None, "events": evs}


def list_runs(conn: Connection, filters: Filters, *, limit: int = 50, cursor: str | None = None) -> RunPage:
    """Runs matching ``filters``, newest first, keyset-paginated."""
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise QueryError("limit", f"must be between 1 and {PAGE_LIMIT_MAX}")
    r = _LISTED
    after = _decode_cursor(cursor) if cursor else None
    if filters.cluster:
        # The cluster's runs come from two index paths (its failed runs, the recovered runs of its
        # steps) and are sorted: the page's (start, seq) are picked first, then only its rows are
        # read and counted. Sorted whole, every candidate's row and tool-call count went through
        # the sort (7,000 for 1,000 listed at 10M events).
        # The two paths as a UNION ALL (disjoint: one takes failed runs, the other ok runs), so
        # the failed runs' (start, seq) come from their index without a row read each, as a
        # MULTI-INDEX OR of both would.
        rest = replace(filters, cluster=())
        failed, ok = _PAGED_FAILED, _PAGED_OK
        branches = union_all(
            select(failed.c.start_ns, failed.c.seq).where(
                *_page_conditions(failed, rest, after, run=_RUN), failed.c.status == _ERROR,
                failed.c.cluster_id.in_(filters.cluster),
            ),
            select(ok.c.start_ns, ok.c.seq).where(
                *_page_conditions(ok, rest, after, run=_RUN), ok.c.status == _OK, _recovered(ok, filters.cluster)
            ),
        ).subquery("picked")  # fmt: skip
        picked = select(branches.c.seq).order_by(branches.c.start_ns.desc(), branches.c.seq.desc())
        cond = [r.c.seq.in_(picked.limit(limit + 1).scalar_subquery())]
    else:
        cond = _page_conditions(r, filters, after)
    q = (
        select(*_LISTED_COLUMNS, _TOOL_CALLS.label("tool_calls"))
        .where(*cond)
        .order_by(r.c.start_ns.desc(), r.c.seq.desc())
        .limit(limit + 1)
    )
    result = conn.execute(q)
    names = list(result.keys())
    # The driver's own tuples: these columns need no result processing (strings, integers and
    # the Boolean flag, which event_json makes a bool), and SQLAlchemy's Row per row, then its
    # mapping view, cost as much as the query on a 1000-run page.
    rows = result.cursor.fetchall()
    page = rows[:limit]
    out = []
    for row in page:
        m = dict(zip(names, row, strict=True))
        d = event_json(m)
        d["tool_calls"] = int(m["tool_calls"])
        out.append(d)
    nxt = _encode_cursor(out[-1]["start_time_unix_nano"], out[-1]["seq"]) if len(rows) > limit else None
    return RunPage(out, nxt)


def _page_conditions(r: Any, filters: Filters, after: tuple[int, int] | None, *, run: Any = "run") -> list[Any]:
    cond = [r.c.kind == run, *run_conditions(r, filters, per_run=True)]
    if after is not None:
        # A row-value comparison is one index range on both dialects (an OR of two is a filter).
        cond.append(tuple_(r.c.start_ns, r.c.seq) < tuple_(literal(after[0]), literal(after[1])))
    return cond


def run_ids(conn: Connection, filters: Filters) -> list[str]:
    """Every run ID matching ``filters`` (for tests and exact drill-down checks)."""
    r = events.alias("r")
    q = select(r.c.run_id).where(r.c.kind == "run", *run_conditions(r, filters))
    return list(conn.execute(q).scalars())


def run_conditions(r: Any, f: Filters, *, per_run: bool = False) -> list[Any]:
    """SQL conditions selecting run events (alias ``r``) that match the filters.

    ``per_run`` (the run list: newest first, a page at a time) writes the ``tool`` and tag
    conditions as scalar subqueries with ``LIMIT 1``, which PostgreSQL cannot flatten into a
    semi-join: it then walks the runs backwards by time and probes each one's index entries until
    the page is full, instead of hashing every event of that tool (or run of that tag) in the
    database and sorting the window's runs. SQLite plans both forms the same way (a probe per run).

    Run-level dimensions (project, model, scenario) are the run's own; ``tool`` selects runs
    with at least one step on that tool; tags are the run's tags.

    Index paths (docs/performance.md): runs by time and run dimensions come from the partial
    ``ix_runs_*`` indexes; ``tool`` probes the run's own entries of ``ix_events_run_kind_tool``;
    tags the ``run_tags`` primary key; ``error_class`` walks that class's runs
    (``ix_runs_class_start``); ``cluster`` reads the cluster's failed runs
    (``ix_runs_cluster_failed``) and its steps' runs (``ix_steps_cluster_run``), from the
    clustered events only.
    """
    cond: list[Any] = []
    for dim in RUN_DIMENSIONS:
        values = getattr(f, dim)
        if values:
            cond.append(r.c[dim].in_(values))
    if f.tool:
        s = events.alias("s")
        cond.append(_any_row(select(s.c.run_id).where(s.c.run_id == r.c.run_id, s.c.tool.in_(f.tool)), per_run))
    for key, values in f.tags:
        t = run_tags
        tagged = select(t.c.run_id).where(t.c.run_id == r.c.run_id, t.c.key == key, t.c.value.in_(values))
        cond.append(_any_row(tagged, per_run))
    if f.from_ns is not None:
        cond.append(r.c.start_ns >= f.from_ns)
    if f.to_ns is not None:
        cond.append(r.c.start_ns < f.to_ns)
    if f.status:
        cond.append(r.c.status.in_(f.status))
    if f.error_class:
        cond.append(r.c.failure_class.in_(f.error_class))
    if f.cluster:
        # A failed run is in the cluster of its root cause only (its stored cluster_id); a run
        # that ended ok is in every cluster one of its failed steps is in (recovered).
        recovered = _recovered(r, f.cluster)
        cond.append(
            or_(and_(r.c.status == "error", r.c.cluster_id.in_(f.cluster)), and_(r.c.status == "ok", recovered))
        )
    return cond


def _recovered(r: Any, clusters: tuple[str, ...]) -> Any:
    """``r`` is the run of a failed step in one of ``clusters`` (to be combined with status ok).

    The steps' run ids skip runs that failed with a root cause (their run event is in
    ``ix_events_failed_cluster``, one index probe): an ok run is never one of them, and they are
    most of a cluster's steps, whose run rows were each read only to be refused.
    """
    s, f = events.alias("s"), events.alias("f")
    failed_run = select(f.c.seq).where(
        f.c.run_id == s.c.run_id, f.c.kind == _RUN, f.c.status == _ERROR, f.c.cluster_id.is_not(None)
    )
    steps = select(s.c.run_id).where(s.c.kind != _RUN, s.c.cluster_id.in_(clusters), ~failed_run.exists())
    return r.c.run_id.in_(steps)


def _any_row(q: Any, per_run: bool) -> Any:
    """``EXISTS (q)``; per run, ``(q LIMIT 1) IS NOT NULL`` (``q`` selects a non-null column)."""
    return q.limit(1).scalar_subquery().is_not(None) if per_run else q.exists()


def _encode_cursor(start_ns: int, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{start_ns}:{seq}".encode()).decode().rstrip("=")


_CURSOR = re.compile(r"([0-9]{1,19}):([0-9]{1,19})")


def _decode_cursor(cursor: str) -> tuple[int, int]:
    # Strict: the two numbers this API writes, in range. Anything else (huge integers overflowed
    # PostgreSQL's BIGINT and SQLite's INTEGER: a 500) is a 400, never a database error.
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii") if len(cursor) < 64 else ""
    except (ValueError, UnicodeDecodeError):
        raw = ""
    m = _CURSOR.fullmatch(raw)
    if m is None or not MIN_TIME_NS <= int(m.group(1)) < MAX_TIME_NS or int(m.group(2)) >= 2**63:
        raise QueryError("cursor", "not a cursor returned by this API")
    return int(m.group(1)), int(m.group(2))
