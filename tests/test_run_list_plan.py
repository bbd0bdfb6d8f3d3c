"""The run list and its drill-downs read only the listed runs' index entries (issue #10).

SQLite's plan is deterministic without statistics, so it is asserted exactly: every access to
``events`` is an index SEARCH, the tool-call count is answered from the listed run's own
entries of ``ix_events_run_kind_tool`` and the ``tool`` filter by one seek of ``(tool, run_id)``
(both covering, no table read), and the
``cluster`` filter picks its page from the cluster's failed runs and clustered steps first; an
error class walks that class's runs (``ix_runs_class_start``). PostgreSQL's planner is cost-based (its plan
on a demo-size database is in docs/performance.md); on both databases keyset pages with the
tool and cluster filters list exactly the runs the raw events say, newest first.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hypermindlabs.core.filters import Filters
from hypermindlabs.ingest import ingest_objects

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
ERRORS = ["Error code: 429 rate limit exceeded", "connection reset by peer", "KeyError: 'contact_id'"]


def _dataset(n_runs: int = 60) -> list[dict]:
    events = []
    for i in range(n_runs):
        run_id, start = f"run-{i:03d}", T0 + i * 60 * 10**9
        tools = [("t1", "t2", "t3")[j] for j in range(i % 4) if j < 3]
        failed = i % 3 == 0
        for j, tool in enumerate(tools):
            ev = {"run_id": run_id, "kind": "tool", "tool": tool, "start_time": start + j + 1, "duration_ms": 3}
            if failed and j == 0:
                ev |= {"status": "error", "error": {"type": "ToolError", "message": ERRORS[i % len(ERRORS)]}}
            events.append(ev)
        events.append({"run_id": run_id, "kind": "run", "start_time": start, "duration_ms": 100,
                       "project": "ab"[i % 2], "tags": {"env": ("prod", "dev")[i % 2]},
                       # every other run with a failed step recovers: ok, in its step's cluster
                       "status": "error" if failed and tools and i % 2 == 0 else "ok"})  # fmt: skip
    return events


def _statement(store, f: Filters, **kw) -> tuple[str, object]:
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, stmt, params, context, executemany):
        seen.append((stmt, params))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        store.list_runs(f, **kw)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    return seen[-1]


def _plan(store, f: Filters, **kw) -> list[str]:
    stmt, params = _statement(store, f, **kw)
    with store.engine.connect() as conn:
        return [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + stmt, params)]


@pytest.fixture
def loaded(store):
    ingest_objects(store, _dataset())
    return store


def _clusters(store) -> dict[str, set[str]]:
    """cluster id -> run ids, from every stored event."""
    out: dict[str, set[str]] = {}
    for rid in store.run_ids(Filters()):
        for ev in store.get_run(rid)["events"]:
            if ev.get("cluster_id"):
                out.setdefault(ev["cluster_id"], set()).add(rid)
    return out


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_run_list_filter_reads_events_through_an_index_and_counts_tool_calls_from_the_run_entries(loaded):
    cluster = sorted(_clusters(loaded))[0]
    cases = {
        "plain": Filters(from_ns=T0),
        "tool": Filters(from_ns=T0, tool=("t2",)),
        "cluster": Filters(from_ns=T0, cluster=(cluster,)),
        "project": Filters(from_ns=T0, project=("a",)),
        "tag": Filters(from_ns=T0, tags=(("env", ("prod",)),)),
        "status and class": Filters(from_ns=T0, status=("error",), error_class=("tool_error",)),
        "class and tag": Filters(from_ns=T0, error_class=("tool_error",), tags=(("env", ("prod",)),)),
    }
    for name, f in cases.items():
        plan = _plan(loaded, f, limit=10)
        # (``picked``: the cluster page's (start, seq), a subquery of both paths' rows)
        assert not [p for p in plan if p.startswith("SCAN") and p != "SCAN picked"], (name, plan)
        assert "SEARCH c USING COVERING INDEX ix_events_run_kind_tool (run_id=? AND kind=?)" in plan, (name, plan)
        if f.tool:
            assert any(
                p.startswith("SEARCH s USING COVERING INDEX ix_events_tool_run (tool=? AND run_id=?)") for p in plan
            ), plan
        if f.cluster:
            # The page's (start, seq) from the clustered events' indexes alone (migration 0018),
            # then only its rows read and their tool calls counted, not every candidate's.
            # (subqueries are numbered in statement order: the tags column's and the tool-call count's first)
            assert plan[0] == "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)", plan
            assert plan[1].startswith("LIST SUBQUERY "), plan
            assert "SEARCH pf USING INDEX ix_runs_cluster_failed (cluster_id=? AND start_ns>?)" in plan, plan
            assert "SEARCH s USING COVERING INDEX ix_steps_cluster_run (cluster_id=?)" in plan, plan
            # the steps of runs that failed with a root cause are skipped by an index probe
            assert "SEARCH f USING INDEX ix_events_failed_cluster (run_id=? AND kind=? AND cluster_id>?)" in plan, plan
            inner_sort = plan.index("USE TEMP B-TREE FOR ORDER BY")
            count = "SEARCH c USING COVERING INDEX ix_events_run_kind_tool (run_id=? AND kind=?)"
            assert plan.index(count) > inner_sort, plan
        if f.project:
            assert plan[0] == "SEARCH r USING INDEX ix_runs_project_start (project=? AND start_ns>?)", plan
        if name in ("plain", "tag"):
            assert plan[0] == "SEARCH r USING INDEX ix_runs_start (start_ns>?)", plan
        if f.error_class:  # that class's runs only, newest first (migration 0018), no sort
            assert plan[0] == "SEARCH r USING INDEX ix_runs_class_start (failure_class=? AND start_ns>?)", plan
            assert not [p for p in plan if "TEMP B-TREE" in p], plan
    cursor = loaded.list_runs(Filters(), limit=10).next_cursor
    plan = _plan(loaded, Filters(), limit=10, cursor=cursor)
    assert plan[0] == "SEARCH r USING INDEX ix_runs_start (start_ns<?)", plan  # the row value (start_ns, seq) < (?, ?)


def test_keyset_pages_with_tool_and_cluster_filters_list_exactly_the_runs_of_the_raw_events(loaded):
    events = _dataset()
    start = {e["run_id"]: e["start_time"] for e in events if e["kind"] == "run"}
    with_tool = {e["run_id"] for e in events if e.get("tool") == "t2"}
    clusters = _clusters(loaded)
    assert clusters and all(clusters.values())  # how many clusters the messages make is triage's business
    recovered = {e["run_id"] for e in events if e["kind"] == "run" and e["status"] == "ok"} & set().union(*clusters.values())
    assert recovered  # ok runs listed through their failed steps' cluster
    cases = [(Filters(tool=("t2",)), with_tool)]
    cases += [(Filters(cluster=(cid,)), rids) for cid, rids in clusters.items()]
    cases.append((Filters(tool=("t2",), cluster=tuple(clusters)), with_tool & set().union(*clusters.values())))
    for f, expected in cases:
        seen, cursor = [], None
        while True:
            page = loaded.list_runs(f, limit=4, cursor=cursor)
            seen += [r["run_id"] for r in page.runs]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen)), f
        assert seen == sorted(seen, key=lambda rid: start[rid], reverse=True), f


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_on_postgresql_the_tool_and_tag_filters_probe_each_walked_run_instead_of_joining_every_matching_row(loaded):
    # As EXISTS, PostgreSQL flattened them into a semi-join: every event of the tool (every run of
    # the tag) in the database hashed, and the window's runs read and sorted, before the first row.
    # As a per-run subplan it walks the runs newest first and stops when the page is full.
    for f in (Filters(from_ns=T0, tool=("t2",)), Filters(from_ns=T0, tags=(("env", ("prod",)),))):
        stmt, params = _statement(loaded, f, limit=10)
        with loaded.engine.connect() as conn:
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN (COSTS OFF) " + stmt, params))
        assert "Join" not in plan and "Filter: ((SubPlan" in plan, plan
