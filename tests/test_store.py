"""The event store on SQLite and on PostgreSQL: round trips, idempotency, immutability, filters."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from hypermindlabs.core.events import parse_event
from hypermindlabs.core.filters import Filters, QueryError
from hypermindlabs.ingest import ingest_objects

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def full_event(**over):
    ev = {
        "event_id": "ev-full-1",
        "run_id": "run-full",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
        "parent_span_id": "00f067aa0ba902b7",
        "kind": "llm",
        "name": "chat gpt-4o",
        "start_time": "2026-01-01T10:00:00.123456789Z",
        "end_time": "2026-01-01T10:00:01.5Z",
        "status": "error",
        "project": "support",
        "model": "gpt-4o",
        "tool": "web_search",
        "scenario": "refund",
        "tags": {"env": "prod", "release": "1.4.2"},
        "usage": {"input_tokens": 812, "output_tokens": 97},
        "error": {"type": "RateLimitError", "message": "Error code: 429", "class": "rate_limit"},
        "attributes": {"temperature": 0.2, "nested": {"a": [1, 2, "x"]}, "unicode": "héllo ✓"},
    }
    ev.update(over)
    return ev


def test_every_contract_field_round_trips(store):
    result = ingest_objects(store, [full_event()])
    assert (result.accepted, result.duplicates, result.rejected) == (1, 0, [])
    got = store.get_run("run-full")["events"][0]
    src = full_event()
    for key in ("event_id", "run_id", "trace_id", "span_id", "parent_span_id", "kind", "name", "status",
                "project", "model", "tool", "scenario", "tags", "attributes"):  # fmt: skip
        assert got[key] == src[key], key
    assert got["start_time"] == "2026-01-01T10:00:00.123456789Z"
    assert got["end_time"] == "2026-01-01T10:00:01.500000000Z"
    assert got["start_time_unix_nano"] == T0 + 10 * 3600 * 10**9 + 123456789
    assert got["duration_ms"] == pytest.approx(1376.543211)
    assert got["usage"] == {"input_tokens": 812, "output_tokens": 97, "input_chars": None,
                            "output_chars": None, "estimated": False}  # fmt: skip
    assert got["error"] == src["error"]


def test_reposting_a_batch_stores_nothing_new(store):
    batch = [full_event(), full_event(event_id=None, span_id=None, kind="tool", name="t")]
    first = ingest_objects(store, batch)
    again = ingest_objects(store, batch)
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert store.count_events() == 2


def test_duplicates_inside_one_batch_count_once(store):
    r = ingest_objects(store, [full_event(), full_event()])
    assert (r.accepted, r.duplicates) == (1, 1)


def test_the_same_instant_in_any_unit_is_stored_identically(store):
    forms = ["2026-01-01T00:00:00Z", T0 // 10**9, T0 // 10**6, T0 // 10**3, T0, "2026-01-01T01:00:00+01:00"]
    batch = [{"run_id": f"u{i}", "kind": "run", "start_time": f, "duration_ms": 1} for i, f in enumerate(forms)]
    assert ingest_objects(store, batch).accepted == len(forms)
    starts = {store.get_run(f"u{i}")["run"]["start_time_unix_nano"] for i in range(len(forms))}
    assert starts == {T0}


def test_a_run_id_is_immutable(store):
    run = {"run_id": "r1", "kind": "run", "start_time": T0, "duration_ms": 10, "status": "ok"}
    assert ingest_objects(store, [run]).accepted == 1
    same = ingest_objects(store, [dict(run)])
    assert (same.accepted, same.duplicates) == (0, 1)
    other = ingest_objects(store, [dict(run, status="error")])
    assert other.accepted == 0 and other.rejected[0].field == "run_id"
    assert "immutable" in other.rejected[0].error
    in_batch = ingest_objects(store, [dict(run, run_id="r2"), dict(run, run_id="r2", duration_ms=11)])
    assert in_batch.accepted == 1 and [r.index for r in in_batch.rejected] == [1]
    assert store.get_run("r1")["run"]["status"] == "ok"


def test_children_inherit_the_runs_project_scenario_and_model_within_a_batch(store):
    # Moved from test_run_events (the pure inherit_within was dead code: the store does it).
    run = {"run_id": "r", "kind": "run", "start_time": 1_700_000_000, "duration_ms": 9,
           "project": "p", "scenario": "s", "model": "m"}  # fmt: skip
    child = {"run_id": "r", "kind": "llm", "start_time": 1_700_000_000, "duration_ms": 5, "project": "own"}
    other = {"run_id": "elsewhere", "kind": "llm", "start_time": 1_700_000_000, "duration_ms": 5}
    result = ingest_objects(store, [child, run, other])
    assert result.accepted == 3 and not result.rejected
    got = {(e["run_id"], e["kind"]): e for rid in ("r", "elsewhere") for e in store.get_run(rid)["events"]}
    assert (got["r", "llm"]["project"], got["r", "llm"]["scenario"], got["r", "llm"]["model"]) == ("own", "s", "m")
    assert got["elsewhere", "llm"]["project"] is None


def test_children_inherit_dimensions_in_any_arrival_order(store):
    run = {"run_id": "r", "kind": "run", "start_time": T0, "duration_ms": 100,
           "project": "p", "scenario": "s", "model": "m"}  # fmt: skip
    early = {"run_id": "r", "kind": "tool", "tool": "t", "start_time": T0 + 1, "duration_ms": 5}
    late = {"run_id": "r", "kind": "llm", "start_time": T0 + 2, "duration_ms": 5, "model": "own"}
    ingest_objects(store, [early])
    ingest_objects(store, [run])
    ingest_objects(store, [late])
    evs = {e["kind"]: e for e in store.get_run("r")["events"]}
    assert (evs["tool"]["project"], evs["tool"]["scenario"], evs["tool"]["model"]) == ("p", "s", "m")
    assert (evs["llm"]["project"], evs["llm"]["model"]) == ("p", "own")


def test_run_lookup_returns_the_whole_trace_in_order(store):
    rng = random.Random(3)
    steps = [{"run_id": "tr", "kind": k, "start_time": T0 + i * 10**6, "duration_ms": 1, "name": f"s{i}"}
             for i, k in enumerate(["llm", "tool", "retrieval", "llm", "policy", "tool"], 1)]  # fmt: skip
    run = {"run_id": "tr", "kind": "run", "start_time": T0, "duration_ms": 50, "name": "root"}
    batch = [*steps, run]
    rng.shuffle(batch)
    ingest_objects(store, batch[:3])
    ingest_objects(store, batch[3:])
    ingest_objects(store, [{"run_id": "other", "kind": "run", "start_time": T0, "duration_ms": 1}])
    trace = store.get_run("tr")
    assert trace["complete"] is True
    assert [e["name"] for e in trace["events"]] == ["root", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert store.get_run("missing") is None


def _dataset(n_runs: int = 120, seed: int = 11):
    rng = random.Random(seed)
    events = []
    for i in range(n_runs):
        run_id = f"run-{i:04d}"
        start = T0 + rng.randrange(0, 48 * 3600) * 10**9
        project, scenario, model = rng.choice("ab"), rng.choice(["s1", "s2", "s3"]), rng.choice(["m1", "m2"])
        tools = rng.sample(["t1", "t2", "t3", "t4"], rng.randrange(0, 3))
        for j, tool in enumerate(tools):
            events.append({"run_id": run_id, "kind": "tool", "tool": tool, "start_time": start + j, "duration_ms": 3})
        tags = {"env": rng.choice(["prod", "staging"])}
        if rng.random() < 0.5:
            tags["release"] = rng.choice(["1.0", "1.1"])
        events.append({"run_id": run_id, "kind": "run", "start_time": start, "duration_ms": 100,
                       "project": project, "scenario": scenario, "model": model, "tags": tags,
                       "status": rng.choice(["ok", "ok", "error"])})  # fmt: skip
    return events


def _expected(events, f: Filters) -> set[str]:
    tools_of: dict[str, set[str]] = {}
    for e in events:
        if e["kind"] == "tool":
            tools_of.setdefault(e["run_id"], set()).add(e["tool"])
    out = set()
    for e in events:
        if e["kind"] != "run":
            continue
        ok = all(not getattr(f, d) or e[d] in getattr(f, d) for d in ("project", "scenario", "model"))
        ok &= not f.tool or bool(tools_of.get(e["run_id"], set()) & set(f.tool))
        ok &= all(e["tags"].get(k) in v for k, v in f.tags)
        ok &= f.from_ns is None or e["start_time"] >= f.from_ns
        ok &= f.to_ns is None or e["start_time"] < f.to_ns
        ok &= not f.status or e["status"] in f.status
        if ok:
            out.add(e["run_id"])
    return out


FILTER_CASES = {
    "no filter": Filters(),
    "one project": Filters(project=("a",)),
    "any of two scenarios": Filters(scenario=("s1", "s3")),
    "model and scenario": Filters(model=("m2",), scenario=("s2",)),
    "runs that used a tool": Filters(tool=("t2",)),
    "any of two tools": Filters(tool=("t1", "t4")),
    "a tag": Filters(tags=(("env", ("prod",)),)),
    "two tags": Filters(tags=(("env", ("staging",)), ("release", ("1.1",)))),
    "a tag any-of": Filters(tags=(("release", ("1.0", "1.1")),)),
    "half-open time window": Filters(from_ns=T0 + 6 * 3600 * 10**9, to_ns=T0 + 30 * 3600 * 10**9),
    "status error": Filters(status=("error",)),
    "everything at once": Filters(project=("b",), tool=("t3",), tags=(("env", ("prod",)),), from_ns=T0 + 3600 * 10**9),
}


def test_run_list_filters_are_exact(store):
    events = _dataset()
    assert ingest_objects(store, events).accepted == len(events)
    for name, f in FILTER_CASES.items():
        assert set(store.run_ids(f)) == _expected(events, f), name
        listed = [r["run_id"] for r in store.list_runs(f, limit=1000).runs]
        assert set(listed) == _expected(events, f), name


def test_events_on_the_window_edges_are_counted_once(store):
    edge = T0 + 3600 * 10**9
    ingest_objects(store, [{"run_id": f"e{i}", "kind": "run", "start_time": edge + d, "duration_ms": 1}
                           for i, d in enumerate([-1, 0, 1])])  # fmt: skip
    before = set(store.run_ids(Filters(to_ns=edge)))
    after = set(store.run_ids(Filters(from_ns=edge)))
    assert before == {"e0"} and after == {"e1", "e2"}


def test_pagination_walks_every_run_once_newest_first(store):
    events = _dataset(75)
    ingest_objects(store, events)
    seen, cursor, pages = [], None, 0
    while True:
        page = store.list_runs(Filters(), limit=20, cursor=cursor)
        seen.extend(page.runs)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 4 and len(seen) == 75 and len({r["run_id"] for r in seen}) == 75
    keys = [(r["start_time_unix_nano"], r["seq"]) for r in seen]
    assert keys == sorted(keys, reverse=True)
    with pytest.raises(QueryError):
        store.list_runs(Filters(), cursor="garbage!")


def test_run_rows_count_their_tool_calls(store):
    ingest_objects(store, _dataset(30))
    events = _dataset(30)
    calls = {}
    for e in events:
        if e["kind"] == "tool":
            calls[e["run_id"]] = calls.get(e["run_id"], 0) + 1
    for r in store.list_runs(Filters(), limit=100).runs:
        assert r["tool_calls"] == calls.get(r["run_id"], 0)


def test_concurrent_writers_of_the_same_events_store_each_once(make_store):
    stores = [make_store(), make_store()]
    events = [parse_event(e) for e in _dataset(40)]
    results = []

    def write(s):
        for i in range(0, len(events), 25):
            chunk = events[i : i + 25]
            results.append(s.append(list(chunk)))

    threads = [threading.Thread(target=write, args=(s,)) for s in stores for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.accepted for r in results) == len(events)
    assert sum(r.duplicates for r in results) == 3 * len(events)
    assert stores[0].count_events() == len(events)


def test_schema_is_migrated_to_head(store):
    assert store.schema_version() == store.head_version() is not None


def test_a_batch_of_new_events_is_stored_without_an_event_id_lookup_and_a_retry_still_deduplicates(make_store):
    """Issue #8: duplicates are found by the insert (ON CONFLICT DO NOTHING, RETURNING on PostgreSQL),
    not by an ``event_id IN (...)`` pre-check, which PostgreSQL ran as a sequential scan on a table
    never analysed (each batch slower as the table grew). A retry and a conflict are still told apart."""
    from sqlalchemy import event as sa_event

    store = make_store()
    first = [parse_event(e) for e in _dataset(30)]
    statements: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany):
        statements.append(statement)

    sa_event.listen(store.engine, "before_cursor_execute", seen)
    try:
        result = store.append(first)
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", seen)
    assert result.accepted == len(first) and not result.rejected
    lookups = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "event_id IN" in s.replace('"', "")]
    assert not lookups, lookups[0][:200]
    # The same batch again: every event a duplicate; one changed event under a stored id: a conflict.
    again = store.append(first)
    assert (again.accepted, again.duplicates, again.rejected) == (0, len(first), [])
    child = next(e for e in _dataset(30) if e["kind"] != "run")
    run = next(e for e in _dataset(30) if e["kind"] == "run")
    assert store.append([parse_event({**child, "event_id": "fixed-id"})]).accepted == 1
    fresh = [parse_event({**child, "event_id": "fresh-id", "span_id": "00000000000000ff"})]
    mixed = store.append([
        parse_event({**child, "event_id": "fixed-id", "name": "renamed"}),  # other content, stored id
        parse_event({**run, "name": "renamed"}),  # a second run event for a stored run
        *fresh,
    ])  # fmt: skip
    assert [(r.index, r.field) for r in mixed.rejected] == [(0, "event_id"), (1, "run_id")]
    assert mixed.accepted == 1
    assert store.count_events() == len(first) + 2


def _run_event(i: int) -> dict:
    return {
        "event_id": f"snap-{i}", "run_id": f"snap-run-{i}", "kind": "run", "name": "agent",
        "start_time": f"2026-01-01T10:{i:02d}:00Z", "end_time": f"2026-01-01T10:{i:02d}:01Z",
        "status": "ok", "project": "support", "scenario": "refund", "model": "gpt-4o",
    }


def _hour_of_runs(store: Any, minutes: tuple[int, ...], cube_name: str) -> tuple[int, int, Any]:
    """Runs stored at 10:``minutes`` on 2026-01-01; that hour's bounds and a cell query on a run cube."""
    from hypermindlabs.rollups.answers import cell_query
    from hypermindlabs.rollups.facts import CUBES
    from hypermindlabs.rollups.query import MetricsQuery

    assert ingest_objects(store, [_run_event(i) for i in minutes]).accepted == len(minutes)
    t0, t1 = 1_767_261_600 * 10**9, 1_767_265_200 * 10**9  # 2026-01-01 10:00 to 11:00
    q = MetricsQuery(filters=Filters(), kinds=("run",), group_by=(), from_ns=t0, to_ns=t1,
                     requested_from_ns=t0, requested_to_ns=t1)  # fmt: skip
    return t0, t1, cell_query(q, next(c for c in CUBES if c.level == "run" and c.name == cube_name))


def test_a_rollup_reader_sees_one_snapshot_while_a_writer_commits(make_store):
    """An answer reads the slices, then their cells, in separate statements: a commit landing
    between them must not show (it made /api/v1/regressions answer 500 under concurrent ingest
    on PostgreSQL, a KeyError for a cell of a slice the first statement had not seen)."""
    import sqlalchemy as sa

    from hypermindlabs.store.schema import rollup_cells

    reader_store, writer_store = make_store(), make_store()
    assert ingest_objects(writer_store, [_run_event(0)]).accepted == 1
    count = sa.select(sa.func.count()).select_from(rollup_cells)
    with reader_store.rollup_reader() as reader:
        conn = reader._conn  # the reader's one connection: what every read of one answer runs on
        before = conn.execute(count).scalar_one()
        assert before > 0
        assert ingest_objects(writer_store, [_run_event(i) for i in range(1, 6)]).accepted == 5
        assert conn.execute(count).scalar_one() == before
    with reader_store.rollup_reader() as reader:
        assert reader._conn.execute(count).scalar_one() > before


def test_rollup_sums_are_integers_on_both_databases_and_overflow_fails_alike(make_store):
    """PostgreSQL's sum(bigint) is numeric: Decimal rows, slow to build and add in Python. The
    summed measures come back as ints on both, the sums of squares as floats (migration 0023);
    past 64 bits an integer sum is refused on both instead of answering."""
    import sqlalchemy as sa

    from hypermindlabs.core.vocabulary import ROLLUP_MEASURES, ROLLUP_SQUARES
    from hypermindlabs.rollups.answers import cell_query, grouped
    from hypermindlabs.rollups.query import MetricsQuery, plan
    from hypermindlabs.store.dialect import int_sum

    store = make_store()
    assert ingest_objects(store, [_run_event(i) for i in range(6)]).accepted == 6
    t0, t1 = 1_767_261_600 * 10**9, 1_767_265_200 * 10**9  # 2026-01-01 10:00 to 11:00
    q = MetricsQuery(filters=Filters(), kinds=("run",), group_by=(), from_ns=t0, to_ns=t1,
                     requested_from_ns=t0, requested_to_ns=t1)  # fmt: skip
    with store.rollup_reader() as reader:  # the slice-first path (the joined one reads no sums)
        reader.read(cell_query(q, plan(q)[900]), 900, [(t0, t1)], aggs := {})
    kinds = {(m in ROLLUP_SQUARES, type(v)) for agg in aggs.values() for m, v in zip(ROLLUP_MEASURES, agg.sums, strict=True)}
    assert kinds == {(False, int), (True, float)}
    assert sum(agg.sums[0] for agg in aggs.values()) == 6
    aggs, _ = grouped(store, q, [(t0, t1)])
    assert aggs[()].sums[0] == 6
    big = sa.select(int_sum(sa.literal_column("v"))).select_from(
        sa.text("(SELECT 9223372036854775807 AS v UNION ALL SELECT 1) AS t")
    )
    with store.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="(?i)out of range|overflow"):
        conn.execute(big).scalar()


@pytest.mark.parametrize("cube_name", ["total", "full"])
def test_a_read_of_several_ranges_is_one_statement_and_sums_what_each_range_holds(make_store, cube_name):
    """A summary's edges of one tier (the minutes before and after its whole hours) are read in
    one statement, a UNION ALL of their range scans, by the slice-first path (``total``) and the
    joined one (``full``); the sums equal those of reading each range alone."""
    import sqlalchemy as sa

    from hypermindlabs.rollups.answers import cell_query
    from hypermindlabs.rollups.facts import CUBES
    from hypermindlabs.rollups.query import MetricsQuery

    store = make_store()
    assert ingest_objects(store, [_run_event(i) for i in (1, 2, 30, 45, 46, 47)]).accepted == 6
    t0, t1 = 1_767_261_600 * 10**9, 1_767_265_200 * 10**9  # 2026-01-01 10:00 to 11:00
    q = MetricsQuery(filters=Filters(), kinds=("run",), group_by=(), from_ns=t0, to_ns=t1,
                     requested_from_ns=t0, requested_to_ns=t1)  # fmt: skip
    cq = cell_query(q, next(c for c in CUBES if c.level == "run" and c.name == cube_name))
    minute = 60 * 10**9
    ranges = [(t0, t0 + 20 * minute), (t0 + 40 * minute, t1)]
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, stmt, *_a: statements.append(stmt))
    per_range = []
    with store.rollup_reader() as reader:
        for r in ranges:
            reader.read(cq, 60, [r], aggs := {})
            per_range.append(sum(a.sums[0] for a in aggs.values()))
        statements.clear()
        reader.read(cq, 60, ranges, both := {})
    cell_reads = [s for s in statements if "rollup_cells" in s]
    assert len(cell_reads) == 1 and "UNION ALL" in cell_reads[0]
    assert sum(a.sums[0] for a in both.values()) == sum(per_range)
    assert per_range == [2, 3]  # 10:01, 10:02 | 10:45–10:47 (10:30 is in neither range)


@pytest.mark.parametrize("cube_name", ["total", "full"])
def test_a_summarys_tiers_of_one_cube_are_one_statement_and_sum_what_each_tier_holds(make_store, cube_name):
    """A summary over 09:17–12:43 reads whole hours, edge quarters and edge minutes of one cube:
    one statement for all three tiers (a UNION ALL of their range scans; it was one per tier), by
    the slice-first path (``total``) and the joined one (``full``). Counts, sums and latency bins
    equal those of reading each tier alone."""
    import sqlalchemy as sa

    from hypermindlabs.rollups.answers import cell_query
    from hypermindlabs.rollups.facts import CUBES
    from hypermindlabs.rollups.query import MetricsQuery, cover

    def run(i: int, hh: int, mm: int, secs: int) -> dict:
        ev = _run_event(i)
        ev["start_time"] = f"2026-01-01T{hh:02d}:{mm:02d}:00Z"
        ev["end_time"] = f"2026-01-01T{hh:02d}:{mm:02d}:{secs:02d}Z"
        return ev

    store = make_store()
    times = [(9, 16, 1), (9, 20, 2), (9, 40, 3), (10, 5, 4), (11, 59, 5), (12, 10, 6), (12, 35, 7), (12, 43, 8)]
    assert ingest_objects(store, [run(i, *t) for i, t in enumerate(times)]).accepted == len(times)
    hour = 3600 * 10**9
    t0, t1 = 1_767_261_600 * 10**9 - 43 * 60 * 10**9, 1_767_261_600 * 10**9 + 2 * hour + 43 * 60 * 10**9
    q = MetricsQuery(filters=Filters(), kinds=("run",), group_by=(), from_ns=t0, to_ns=t1,
                     requested_from_ns=t0, requested_to_ns=t1)  # fmt: skip
    cq = cell_query(q, next(c for c in CUBES if c.level == "run" and c.name == cube_name))
    by_tier: dict[int, list[tuple[int, int]]] = {}
    for tier, a, b in cover(t0, t1, [3600, 900, 60]):
        by_tier.setdefault(tier, []).append((a, b))
    assert sorted(by_tier) == [60, 900, 3600]  # the window takes all three tiers
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, stmt, *_a: statements.append(stmt))
    alone: dict[tuple, list] = {}
    with store.rollup_reader() as reader:
        for tier, ranges in by_tier.items():
            reader.read(cq, tier, ranges, aggs := {})
            for agg in aggs.values():
                alone.setdefault((), [0, {}])[0] += agg.sums[0]
                for b, n in agg.bins.items():
                    alone[()][1][b] = alone[()][1].get(b, 0) + n
        statements.clear()
        reader.read_tiers([(cq, tier, ranges) for tier, ranges in by_tier.items()], together := {})
    cell_reads = [s for s in statements if "rollup_cells" in s]
    assert len(cell_reads) == 1 and cell_reads[0].count("UNION ALL") == sum(map(len, by_tier.values())) - 1
    # 09:17 to 12:43 (not 09:16, 12:43); ``full`` keeps minutes only: 09:20 and 12:35.
    expected = {"total": 6, "full": 2}[cube_name]
    assert sum(a.sums[0] for a in together.values()) == alone[()][0] == expected
    bins: dict[int, int] = {}
    for agg in together.values():
        for b, n in agg.bins.items():
            bins[b] = bins.get(b, 0) + n
    assert bins == alone[()][1] and sum(bins.values()) == expected


# PostgreSQL only: SQLite keeps its compiled statements in the driver's own cache.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_reads_keep_the_drivers_prepared_statements_between_answers(make_store, backend):
    """psycopg forgets a connection's prepared statements at every ROLLBACK; a read ends with a
    COMMIT on PostgreSQL, so the statements of repeated answers are parsed and planned once."""
    import sqlalchemy as sa

    store = make_store()
    q = sa.text("SELECT count(*) FROM rollup_slices WHERE level = :level  -- prepared-marker")
    for _ in range(24):  # psycopg prepares a statement at its fifth run on a connection (of a few pooled)
        with store.read() as conn:
            assert conn.execute(q, {"level": "run"}).scalar() == 0
    with store.read() as conn:
        kept = sa.text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%prepared-marker%'")
        assert conn.execute(kept).scalar() == 1
    with store.engine.connect() as conn:  # a pooled connection is left without a transaction
        assert not conn.in_transaction()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_deadline_read_begins_its_snapshot_with_its_timeout_and_a_plain_read_keeps_the_defaults(make_store, backend):
    """The read deadline's ``SET LOCAL statement_timeout`` goes in the round trip of the read's
    ``BEGIN`` (psycopg's own, sent by us): the snapshot is still REPEATABLE READ READ ONLY and cut
    at the deadline, and nothing of it leaks into the next transaction of the pooled connection."""
    import sqlalchemy as sa

    from hypermindlabs.store import dialect

    store = make_store()
    sent: list[bytes] = []
    shows = [sa.text(f"SHOW {k}") for k in ("transaction_isolation", "transaction_read_only", "statement_timeout")]
    real = dialect._begin_command
    dialect._begin_command = lambda driver: sent.append(real(driver)) or real(driver)  # type: ignore[assignment]
    try:
        with store.read() as conn:
            dialect.begin_snapshot(conn)
            isolation, read_only, timeout = (conn.execute(q).scalar() for q in shows)
        assert sent == [b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"]
        assert (isolation, read_only) == ("repeatable read", "on")
        assert timeout.endswith("ms") and 0 < int(timeout[:-2]) <= store.read_timeout_ms
        with store.engine.connect() as conn:  # no deadline: the server's defaults, psycopg's BEGIN
            assert [conn.execute(q).scalar() for q in shows] == ["read committed", "off", "0"]
        assert len(sent) == 1
    finally:
        dialect._begin_command = real  # type: ignore[assignment]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_pooled_connection_idle_past_the_ping_age_is_replaced_when_its_backend_died(make_store, backend):
    """Checkout pings only a connection idle for longer than ``_PING_AFTER_IDLE_S`` (a round trip
    before every answer otherwise); one whose server backend was terminated meanwhile is replaced
    at checkout, and the read succeeds, as with SQLAlchemy's pre_ping."""
    import psycopg
    import sqlalchemy as sa

    from hypermindlabs.store import dialect

    store = make_store()
    with store.read() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as other:  # not from the pool: that holds the one to kill
        assert other.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    kept = dialect._PING_AFTER_IDLE_S
    dialect._PING_AFTER_IDLE_S = 0.0  # the pooled connection counts as idle: pinged, found dead
    try:
        with store.read() as conn:
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        dialect._PING_AFTER_IDLE_S = kept
    with store.read() as conn:  # used just now: no ping, the same live backend
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_joined_reads_planner_cost_goes_with_the_answers_begin_and_without_a_deadline_by_itself(make_store, backend):
    """An answer that reads a joined cube (``full``, ``tags``) lowers ``random_page_cost`` for its
    transaction (store/dialect.planned_for_their_values). Under a read deadline the setting goes
    in the round trip of the answer's BEGIN, no statement of its own; without one it is sent
    before the joined read, as before. Either way the joined read is planned at 1.1."""
    import sqlalchemy as sa

    from hypermindlabs.store.dialect import begin_snapshot
    from hypermindlabs.store.rollup_reads import RollupReader

    store = make_store()
    t0, t1, cq = _hour_of_runs(store, (1, 2, 30), "full")
    with store.engine.connect() as conn:
        server_cost = conn.execute(sa.text("SHOW random_page_cost")).scalar()
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, stmt, *_a: statements.append(stmt))
    with store.rollup_reader() as reader:  # the store's read deadline is open
        reader.read_tiers([(cq, 60, [(t0, t1)])], aggs := {})
        cost = reader._conn.execute(sa.text("SHOW random_page_cost")).scalar()
    assert cost == "1.1" and sum(a.sums[0] for a in aggs.values()) == 3
    assert not [s for s in statements if "set_config" in s]
    statements.clear()
    with store.engine.connect() as conn:  # no deadline: the setting is a statement of its own
        reader = RollupReader(begin_snapshot(conn))
        reader.read_tiers([(cq, 60, [(t0, t1)])], aggs := {})
        assert conn.execute(sa.text("SHOW random_page_cost")).scalar() == "1.1"
        conn.commit()
    assert len([s for s in statements if "set_config" in s]) == 1 and sum(a.sums[0] for a in aggs.values()) == 3
    with store.engine.connect() as conn:  # and it ended with its transaction
        assert conn.execute(sa.text("SHOW random_page_cost")).scalar() == server_cost


def test_sequence_numbers_follow_the_batch_order_on_both_databases(store):
    """``seq`` is the store's order (run-list ties, examples, chunked rebuilds): a batch's events
    take it in the order they came. PostgreSQL's staged insert read them back from a DELETE …
    RETURNING in no set order: from the second batch of demo events on, 2,290 of 60,000 events got
    other numbers than on SQLite."""
    import itertools
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from hypermindlabs.demo import demo_spec, generate_events

    spec = demo_spec(seed=11, end=datetime(2026, 1, 15, tzinfo=UTC), days=14)
    objs = list(itertools.islice(generate_events(spec, runs_per_day=9_000), 12_000))
    for i in range(0, len(objs), 5_000):
        ingest_objects(store, objs[i : i + 5_000])
    with store.engine.connect() as conn:
        stored = list(conn.execute(sa.text("SELECT event_id FROM events ORDER BY seq")).scalars())
    assert stored == [parse_event(o).event_id for o in objs]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_the_run_list_and_a_trace_keep_their_prepared_statements_too(make_store, backend):
    """The run list and a run's trace read through ``store.read()`` (they opened bare connections,
    which end with a ROLLBACK: psycopg re-parsed and re-planned them on every request)."""
    import sqlalchemy as sa

    store = make_store()
    store.append([parse_event({"run_id": "r1", "kind": "run", "start_time": 1_767_225_600, "duration_ms": 5})])
    for _ in range(24):  # prepared at the fifth run on a connection, of a few pooled
        assert [r["run_id"] for r in store.list_runs(Filters(), limit=10).runs] == ["r1"]
        assert store.get_run("r1")["complete"]
    with store.read() as conn:
        kept = sa.text(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%AS tool_calls%' "
            "OR statement LIKE '%ORDER BY events.start_ns%'"
        )
        assert conn.execute(kept).scalar() == 2


def test_the_slice_list_of_a_cell_read_is_written_into_postgresql_statements(make_store):
    """A prepared statement's generic plan rebuilt ``ARRAY[$5, …]`` for every row it scanned: on
    PostgreSQL the slice ids (ints the store read) are in the statement text; SQLite binds them."""
    import sqlalchemy as sa

    from hypermindlabs.rollups.answers import grouped
    from hypermindlabs.rollups.query import MetricsQuery

    store = make_store()
    assert ingest_objects(store, [_run_event(i) for i in range(6)]).accepted == 6
    t0, t1 = 1_767_261_600 * 10**9, 1_767_265_200 * 10**9
    q = MetricsQuery(filters=Filters(project=("support",)), kinds=("run",), group_by=("model",), from_ns=t0,
                     to_ns=t1, requested_from_ns=t0, requested_to_ns=t1)  # fmt: skip
    seen: list[tuple[str, object]] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda c, cur, stmt, params, *a: seen.append((stmt, params)))
    aggs, _ = grouped(store, q, [(t0, t1)])
    assert {k: a.sums[0] for k, a in aggs.items()} == {("gpt-4o",): 6}
    listed = [stmt for stmt, _ in seen if "rollup_cells.slice_id IN" in stmt]
    assert listed
    for stmt in listed:
        in_list = stmt.split("rollup_cells.slice_id IN", 1)[1].split(")", 1)[0]
        if store.engine.dialect.name == "postgresql":
            assert "%(" not in in_list and any(ch.isdigit() for ch in in_list), in_list
        else:
            assert "?" in in_list, in_list


def test_postgresql_writers_of_stores_in_other_schemas_do_not_wait_on_each_other():
    """The writers' advisory lock is per store (schema), not per database: while one store's
    writer holds it, a store in another schema of the same database appends at once, and a second
    writer of the same store waits."""
    import uuid

    from hypermindlabs.store.rollup_cells import lock_writers
    from tests.conftest import (
        PG_URL,
        _drop_schema,
        _pg_schema_store,
        open_pipeline,
        pg_schema_url,
        postgres_available,
        require,
    )

    require(postgres_available(), f"PostgreSQL at {PG_URL}")
    a_name, b_name = f"t_{uuid.uuid4().hex[:12]}", f"t_{uuid.uuid4().hex[:12]}"
    a, b = _pg_schema_store(a_name), _pg_schema_store(b_name)
    a2 = open_pipeline(pg_schema_url(a_name)).store
    try:
        with a.engine.begin() as holder:
            lock_writers(holder)
            other = threading.Thread(target=ingest_objects, args=(b, [_run_event(1)]), daemon=True)
            other.start()
            other.join(20)
            assert not other.is_alive(), "a store in another schema waited for this store's writer lock"
            assert b.count_events() == 1
            done = threading.Event()
            t = threading.Thread(target=lambda: (ingest_objects(a2, [_run_event(2)]), done.set()), daemon=True)
            t.start()
            assert not done.wait(1.5), "a writer of the same store did not wait for the lock"
        assert done.wait(30)
        t.join(30)
    finally:
        for s in (a, b, a2):
            s.close()
        _drop_schema(a_name)
        _drop_schema(b_name)


def test_joined_rollup_reads_are_planned_for_their_values_within_their_read_only(make_store, backend):
    """PostgreSQL plans the reads that join cells to slices for their own values with cached-table
    costs (store/dialect.planned_for_their_values): never through the driver's prepared statements,
    ``random_page_cost`` lowered for that read transaction only, the driver's threshold restored."""
    import sqlalchemy as sa

    from hypermindlabs.store.dialect import planned_for_their_values

    store = make_store()
    assert ingest_objects(store, [_run_event(i) for i in range(3)]).accepted == 3
    if backend == "sqlite":
        with store.rollup_reader() as reader, planned_for_their_values(reader._conn):
            assert reader._conn.execute(sa.text("SELECT 1")).scalar() == 1
        return
    server_cost = float(store.engine.connect().execute(sa.text("SHOW random_page_cost")).scalar())
    with store.rollup_reader() as reader:
        conn = reader._conn
        driver = conn.connection.driver_connection
        threshold = driver.prepare_threshold
        with planned_for_their_values(conn):
            assert driver.prepare_threshold is None  # psycopg runs the statement unprepared
            assert float(conn.execute(sa.text("SHOW random_page_cost")).scalar()) == min(server_cost, 1.1)
        assert driver.prepare_threshold == threshold
    with store.engine.connect() as conn:
        assert float(conn.execute(sa.text("SHOW random_page_cost")).scalar()) == server_cost


def test_an_answers_joined_reads_set_the_planner_cost_once(make_store, backend):
    """Every joined read of one answer runs planned for its values; the transaction-scoped cost is
    set by the first (one round trip per answer, not per read). SQLite sets nothing."""
    import sqlalchemy as sa


    store = make_store()
    t0, t1, full = _hour_of_runs(store, (1, 2, 45), "full")
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, stmt, *_a: statements.append(stmt))
    minute = 60 * 10**9
    with store.rollup_reader() as reader:
        reader.read(full, 60, [(t0, t0 + 30 * minute)], first := {})
        reader.read(full, 60, [(t0 + 30 * minute, t1)], second := {})
    assert [sum(a.sums[0] for a in aggs.values()) for aggs in (first, second)] == [2, 1]
    cost_sets = [s for s in statements if "random_page_cost" in s]
    assert len(cost_sets) == (1 if backend == "postgres" else 0)
