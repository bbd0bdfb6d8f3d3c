"""The rollup cells' layout (issue #10, build item 1): one row per (part, tier, bucket, slice).

Before migration 0011 a cell was a row per latency bin, so the table grew with the spread of
latencies (that is, with events); now each cell packs its sketch in one column. The answers stay
those of the raw events (tests/test_metrics_api.py, tests/test_rollups.py hold them to it).
"""

from __future__ import annotations

import sqlalchemy as sa

from hypermindlabs.core.sketch import add_packed, bin_of, pack, quantiles, sketch_of, unpack
from hypermindlabs.rollups.facts import DAY as DAY_S
from hypermindlabs.store import EventStore
from hypermindlabs.store.schema import rollup_cells, rollup_slices
from tests.test_rollups import (
    DAY,
    T0,
    build_runs,
    downgrade_schema,
    enrich,
    ingest,
    rebuild_from_scratch,
    run_count,
    snapshot,
    to_events,
)


def _run(i: int, start_ns: int, dur_ms: float) -> list[dict]:
    return [{
        "event_id": f"lat-{i}", "run_id": f"lat-{i}", "kind": "run", "status": "ok", "project": "p",
        "start_time": start_ns, "end_time": start_ns + int(dur_ms * 1e6),
    }]  # fmt: skip


def test_a_slice_has_one_cell_per_bucket_whatever_the_latencies(make_store) -> None:
    store: EventStore = make_store()
    start = T0 - T0 % (DAY_S * 10**9) + 3600 * 10**9
    durations = [1.5 * 1.3**i for i in range(40)]  # 40 runs, 40 distinct latency bins
    assert len({bin_of(d) for d in durations}) == 40
    evs = [e for i, d in enumerate(durations) for e in _run(i, start + i * 10**9, d)]
    ingest(store, evs)
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(rollup_cells.c.sketch, rollup_cells.c.n)
            .select_from(rollup_cells.join(rollup_slices, rollup_slices.c.slice_id == rollup_cells.c.slice_id))
            .where(rollup_slices.c.cube == "total", rollup_cells.c.tier == DAY_S)
        ).all()
    assert len(rows) == 1  # was 40: a row per bin
    (blob, n), = rows
    assert n == 40
    assert unpack(blob) == sketch_of(durations)


def test_packed_sketches_merge_to_the_sketch_of_all_values() -> None:
    parts = [[0.0, 1.0, 2.5], [2.5, 900.0], [], [1e-3, 7.0, 7.0, 1e6]]
    merged: list[dict[int, int]] = [{}, {}]
    add_packed(merged, [0, 1, 0, 1], [pack(sketch_of(v)) for v in parts])
    assert merged[0] == sketch_of(parts[0] + parts[2])
    assert merged[1] == sketch_of(parts[1] + parts[3])
    allv = [v for p in parts for v in p]
    assert quantiles(merged[1], [0.5, 1.0]) == quantiles(sketch_of(parts[1] + parts[3]), [0.5, 1.0])
    assert pack(sketch_of(allv)) == pack(dict(reversed(list(sketch_of(allv).items()))))  # canonical


def test_migration_0011_rebuilds_the_cells_of_an_old_layout_database(backend, make_store) -> None:
    # Events stored by today's ingest path (it reads tables of later revisions), then the schema
    # taken back to 0009: the layout of a database from before 0011, events kept.
    store = make_store(rollups=False, enricher=enrich)
    ingest(store, to_events(build_runs(5, 30, T0, DAY)))
    downgrade_schema(store, "0009")
    with store.engine.begin() as conn:  # a cell of the old layout: a row per latency bin
        conn.exec_driver_sql(
            "INSERT INTO rollup_cells (part, tier, bucket_ns, slice_id, bin, n, duration_us, input_tokens, "
            "output_tokens, input_tokens_proxy, output_tokens_proxy, tool_calls, llm_calls, tokens_sq, "
            "tool_calls_sq) VALUES (16, 86400, 0, 1, 5, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)"
        )
    store = make_store(enricher=enrich)
    assert store.schema_version() == store.head_version()
    assert run_count(store) == 30
    with store.engine.connect() as conn:
        assert "sketch" in {c["name"] for c in sa.inspect(conn).get_columns("rollup_cells")}
        assert conn.execute(sa.select(sa.func.count()).where(rollup_cells.c.bucket_ns == 0)).scalar_one() == 0
    filled = snapshot(store)
    rebuild_from_scratch(store)
    assert snapshot(store) == filled


def test_migration_0013_recomputes_the_step_cells_at_their_new_tiers(backend, make_store) -> None:
    from hypermindlabs.rollups.facts import CUBES, MINUTE, part_of

    store = make_store(enricher=enrich)
    ingest(store, to_events(build_runs(6, 30, T0, DAY)))
    downgrade_schema(store, "0012")
    step_full = next(c for c in CUBES if c.level == "step" and c.name == "full")
    assert MINUTE not in step_full.tiers
    with store.engine.begin() as conn:  # a cell of the old layout: the step ``full`` cube per minute
        conn.execute(sa.insert(rollup_cells).values(
            part=part_of(step_full, "tool"), tier=MINUTE, bucket_ns=T0, slice_id=1, n=1, duration_us=1,
            input_tokens=0, output_tokens=0, input_tokens_proxy=0, output_tokens_proxy=0, tool_calls=0,
            llm_calls=0, tokens_sq=0, tool_calls_sq=0, sketch=pack({1: 1}),
        ))  # fmt: skip
    store = make_store(enricher=enrich)
    assert store.schema_version() == store.head_version()
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(rollup_cells.c.tier == MINUTE,
                                                             rollup_cells.c.part >= 16 * step_full.code,
                                                             rollup_cells.c.part < 16 * (step_full.code + 1))).scalar_one() == 0  # fmt: skip
    filled = snapshot(store)
    assert filled
    rebuild_from_scratch(store)
    assert snapshot(store) == filled


def test_each_tier_is_read_from_the_narrowest_cube_that_answers() -> None:
    # Migrations 0021 and 0022: a window's minute edges without conditions read ``total`` (they
    # read ``full``, about a cell per run); a query on one dimension or member reads that
    # dimension's narrow cube (it read the wide one, whose slices multiply every dimension by
    # the outcome).
    from hypermindlabs.core.filters import Filters
    from hypermindlabs.rollups.facts import DAY, HOUR, MINUTE, QUARTER
    from hypermindlabs.rollups.query import MetricsQuery, plan

    def cubes(filters: Filters, group_by: tuple[str, ...] = (), kinds: tuple[str, ...] = ("run",)) -> dict:
        q = MetricsQuery(filters=filters, kinds=kinds, group_by=group_by, from_ns=0, to_ns=0,
                         requested_from_ns=0, requested_to_ns=0)  # fmt: skip
        return {t: c.name for t, c in plan(q).items()}

    assert cubes(Filters()) == dict.fromkeys((MINUTE, QUARTER, HOUR, DAY), "total")
    assert cubes(Filters(status=("error",)), ("error_class",))[MINUTE] == "total"
    assert cubes(Filters(), ("project",)) == {MINUTE: "full", QUARTER: "project", HOUR: "project", DAY: "project"}
    assert cubes(Filters(project=("p",)), ("model",)) == {MINUTE: "full", QUARTER: "core", HOUR: "core", DAY: "core"}
    assert cubes(Filters(), ("tool",))[DAY] == "tool_only"
    assert cubes(Filters(tool=("t",)))[QUARTER] == "tool_only"
    assert cubes(Filters(project=("p",)), ("tool",))[DAY] == "tool"
    assert cubes(Filters(tags=(("env", ("prod",)),)), ("error_class",)) == {MINUTE: "full", HOUR: "tag_only",
                                                                            DAY: "tag_only"}  # fmt: skip
    assert cubes(Filters(project=("p",), tags=(("env", ("prod",)),)))[HOUR] == "tag"
    assert cubes(Filters(), ("model",), ("llm",)) == {QUARTER: "model", DAY: "model"}
    assert cubes(Filters(), ("tool",), ("tool",)) == {QUARTER: "core", DAY: "core"}  # no step tool cube (size)
    assert cubes(Filters(), ("tool",)) == {MINUTE: "full", QUARTER: "tool_only", DAY: "tool_only"}  # no hours
    assert cubes(Filters(project=("p",)), ("tool",), ("tool",)) == {QUARTER: "core", DAY: "core"}


def test_migration_0022_recomputes_the_cells_in_the_new_layout(backend, make_store) -> None:
    from hypermindlabs.rollups.facts import CUBES, MINUTE, part_of

    store = make_store(enricher=enrich)
    ingest(store, to_events(build_runs(7, 40, T0, DAY)))
    filled = snapshot(store)
    parts = {cell[0] for cell in filled[0]}
    narrow = {c for c in CUBES if c.name in ("project", "tool_only", "tag_only", "model")}
    assert len(narrow) == 4
    assert all(any(part_of(c, k) in parts for k in (None, "llm", "tool", "retrieval", "policy")) for c in narrow)
    core = next(c for c in CUBES if c.level == "run" and c.name == "core")
    assert {cell[0] for cell in filled[0] if cell[1] == MINUTE} == {part_of(c, None) for c in CUBES
                                                                     if c.level == "run" and MINUTE in c.tiers}
    assert MINUTE not in core.tiers
    downgrade_schema(store, "0021")  # the layout before (recomputed by that release)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rollup_cells)).scalar_one() == 0
    store = make_store(enricher=enrich)
    assert store.schema_version() == store.head_version()
    assert snapshot(store) == filled
    assert run_count(store) == 40


def test_packed_sketches_merge_signed_counts_and_the_zero_bin_alike() -> None:
    from hypermindlabs.core.sketch import ZERO_BIN

    merged: list[dict[int, int]] = [{}, {7: 1}]
    add_packed(merged, [1, 0, 1], [pack({ZERO_BIN: 2, -300: 1}), pack({ZERO_BIN: -1, 900: 3}), pack({-300: -1})])
    assert {k: v for k, v in merged[1].items() if v} == {ZERO_BIN: 2, 7: 1}
    assert merged[0] == {ZERO_BIN: -1, 900: 3}


def test_a_sketch_packs_small_counts_in_three_bytes_a_bin_and_every_form_reads_back() -> None:
    import numpy as np

    from hypermindlabs.core.sketch import ZERO_BIN

    small = {ZERO_BIN: 1, -690: 2, 5: 127, 1100: -3}
    large = {5: 100_000, 6: -1}
    wide = {5: 1, 40_000: 2}  # a key beyond int16: the 8-byte pairs
    for bins in (small, large, wide, {ZERO_BIN: 4}, {7: 1}):
        assert unpack(pack(bins)) == bins
        assert len(pack(bins)) % 8 != 0 or bins is wide
    assert len(pack(small)) == 1 + 3 * 4
    legacy = np.array([5, 1, 9, 2], dtype="<i4").tobytes()  # stored before the compact forms
    assert unpack(legacy) == {5: 1, 9: 2}
    merged: list[dict[int, int]] = [{}]
    add_packed(merged, [0, 0, 0, 0], [legacy, pack(small), pack(large), pack(wide)])
    assert merged[0] == {ZERO_BIN: 1, -690: 2, 5: 100_129, 6: -1, 9: 2, 1100: -3, 40_000: 2}


def test_a_one_bin_sketch_packs_to_the_same_bytes_each_time_and_is_packed_once() -> None:
    import struct

    import pytest

    from hypermindlabs.core.sketch import ZERO_BIN

    # Most cells a batch writes hold one bin; their stored form is remembered, byte for byte the
    # general form's (narrow, medium, wide, the zero bin, an emptied bin).
    cases = {
        (5, 1): struct.pack("<Bhb", 1, 5, 1),
        (-690, -3): struct.pack("<Bhb", 1, -690, -3),
        (1100, 200): struct.pack("<Bhi", 2, 1100, 200),
        (40_000, 2): struct.pack("<2i", 40_000, 2),
        (ZERO_BIN, 4): struct.pack("<Bhb", 1, -(2**15), 4),
        (9, 0): b"",
    }
    for (k, c), expected in cases.items():
        for _ in range(2):
            assert pack({k: c}) == expected
            assert unpack(pack({k: c})) == ({k: c} if c else {})
    assert pack({5: 1}) is pack({5: 1})  # packed once, then remembered
    for _ in range(2):  # an out-of-range count is refused every time, never remembered
        with pytest.raises(ValueError, match="int32"):
            pack({5: 2**31})


# Summaries and timeseries of a small demo (14 days, 40 runs a day): every read a dashboard makes.
_FEW_CELL_URLS = [
    "/api/v1/metrics/summary",
    "/api/v1/metrics/summary?from=now-14d",
    "/api/v1/metrics/summary?from=now-14d&group_by=project",
    "/api/v1/metrics/summary?from=now-7d&group_by=tool",
    "/api/v1/metrics/summary?from=now-7d&tag.env=prod&group_by=error_class",
    "/api/v1/metrics/summary?from=now-3d&project=acme-support&group_by=model",
    "/api/v1/metrics/summary?from=now-14d&kind=tool&group_by=tool",
    "/api/v1/metrics/summary?from=now-90m&group_by=scenario",
    "/api/v1/metrics/timeseries?from=now-14d",
    "/api/v1/metrics/timeseries?from=now-3d&group_by=project&step=2h",
    "/api/v1/metrics/timeseries?from=now-2d&kind=llm&group_by=model",
]


def test_reads_of_few_cells_take_them_in_one_statement_with_the_same_answers(make_pipeline, monkeypatch) -> None:
    """A read whose matching slices × buckets bound it to a few cells takes every cell with its
    sketch in one statement and sums them in Python, instead of a grouped statement and then a
    sketch statement (a PostgreSQL round trip each). The answers are those of the two-statement
    read, and a 14-day summary takes fewer statements."""
    from datetime import UTC, datetime

    from hypermindlabs.config import Settings
    from hypermindlabs.demo import demo_spec, generate_events
    from hypermindlabs.store import rollup_reads
    from hypermindlabs.web import create_app

    end = datetime(2026, 1, 15, 0, 7, 13, tzinfo=UTC)  # off the minute, as the bench's: window edges
    pipeline = make_pipeline()
    ingest(pipeline.store, list(generate_events(demo_spec(seed=3, end=end, days=14), runs_per_day=40)), batch=2000)
    now_ns = int(end.timestamp()) * 10**9
    client = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: now_ns).test_client()
    statements = [0]

    def count(*_args) -> None:
        statements[0] += 1

    sa.event.listen(pipeline.store.engine, "before_cursor_execute", count)

    def answers(few: int) -> tuple[dict[str, object], int]:
        monkeypatch.setattr(rollup_reads, "_FEW_CELLS", few)
        out = {}
        for url in _FEW_CELL_URLS:
            r = client.get(url)
            assert r.status_code == 200, (url, r.get_json())
            out[url] = r.get_json()
        statements[0] = 0
        client.get("/api/v1/metrics/summary?from=now-14d")
        return out, statements[0]

    default = rollup_reads._FEW_CELLS
    assert default >= 100
    grouped, grouped_statements = answers(0)
    one_pass, one_pass_statements = answers(default)
    assert one_pass == grouped
    assert one_pass_statements < grouped_statements
    summary = one_pass["/api/v1/metrics/summary?from=now-14d"]
    with pipeline.store.engine.connect() as c:  # the raw events' count of the answer's window
        runs = c.execute(sa.text(
            "SELECT count(*) FROM events WHERE kind = 'run' AND start_ns >= :lo AND start_ns < :hi"
        ), {"lo": summary["from_ms"] * 10**6, "hi": summary["to_ms"] * 10**6}).scalar()  # fmt: skip
    assert summary["rows"][0]["runs"] == runs > 400
