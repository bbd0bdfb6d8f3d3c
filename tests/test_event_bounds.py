"""Usage counts and durations at the contract's bounds: refused past them, stored and summed up to them.

Before migration 0023 the rollups' sums of squares were 64-bit integers: a run of 3.04 billion
tokens (squared: past 2^63) failed its batch with a 500 on both databases, and so would 92,000
runs of 10 million tokens in one day's cell, for every later batch of that day. Counts of one
event are now bounded at 2^40 tokens (2^42 characters), far above any model, and low enough that
the integer token sums hold; the squares are floating point. Durations were bounded only by the
year 2100: 3,960 runs from 2026 to 2099 (a "never ended" sentinel) overflowed the day's duration
sums, and every later batch of that day failed; an event now lasts at most 366 days. Before
migration 0024 the exported series kept duration sums in nanoseconds: 292 runs of 366 days under
one label set passed 2^63, and every later batch touching that series failed; they are now
microseconds (a horizon of 292,000 years of summed duration per series).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from hypermindlabs.core.events import EventValidationError, format_timestamp, parse_event
from hypermindlabs.core.vocabulary import MAX_CHARS, MAX_DURATION_NS, MAX_TOKENS, ROLLUP_MEASURES
from hypermindlabs.rollups.facts import CUBES, DAY, part_of
from hypermindlabs.store import rollup_reads
from hypermindlabs.store.schema import export_series, rollup_cells
from tests.conftest import FIXED_NOW_NS
from tests.test_rollups import downgrade_schema, rebuild_from_scratch, snapshot, upgrade_schema

DAY_NS = 86_400 * 10**9
T0 = FIXED_NOW_NS - FIXED_NOW_NS % DAY_NS - 3 * DAY_NS  # midnight, three days back


def _ev(**kw) -> dict:
    return {"run_id": "r", "kind": "llm", "start_time": T0, "duration_ms": 5, **kw}


@pytest.mark.parametrize("field, top", [("input_tokens", MAX_TOKENS), ("output_tokens", MAX_TOKENS),
                                        ("input_chars", MAX_CHARS), ("output_chars", MAX_CHARS)])  # fmt: skip
def test_a_usage_count_past_its_bound_is_refused_naming_the_field(field: str, top: int) -> None:
    assert parse_event(_ev(usage={field: top})).kind == "llm"
    assert parse_event(_ev(usage={field: float(top)})).kind == "llm"
    for bad in (top + 1, float(2 * top), 2**53):  # 2**53 was accepted before
        with pytest.raises(EventValidationError) as err:
            parse_event(_ev(usage={field: bad}))
        assert err.value.field == f"usage.{field}" and f"{top:,}" in err.value.reason


def test_the_proxy_of_the_most_characters_stays_within_the_token_bound() -> None:
    ev = parse_event(_ev(usage={"input_chars": MAX_CHARS}))
    assert ev.input_tokens == MAX_TOKENS and ev.tokens_estimated


def test_an_event_past_the_bound_is_refused_over_http_and_its_batch_keeps_the_rest(client, store) -> None:
    ok = {"run_id": "ok", "kind": "run", "start_time": T0, "duration_ms": 5, "usage": {"input_tokens": MAX_TOKENS}}
    bad = {**ok, "run_id": "bad", "usage": {"input_tokens": MAX_TOKENS + 1}}
    r = client.post("/api/v1/events", json=[ok, bad])
    assert r.status_code == 207, r.get_data(as_text=True)
    assert r.get_json()["rejected"] == [{"index": 1, "field": "usage.input_tokens",
                                         "error": f"at most {MAX_TOKENS:,} (2^40)"}]  # fmt: skip
    assert store.count_events() == 1


def test_an_event_longer_than_366_days_is_refused_naming_the_field() -> None:
    days = MAX_DURATION_NS // 10**6
    assert parse_event(_ev(duration_ms=days)).end_time_unix_nano - T0 == MAX_DURATION_NS
    assert parse_event(_ev(end_time=T0 + MAX_DURATION_NS, duration_ms=None)).end_time_unix_nano - T0 == MAX_DURATION_NS
    for field, extra in (("duration_ms", {"duration_ms": days + 1}),
                         ("end_time", {"end_time": T0 + MAX_DURATION_NS + 10**6, "duration_ms": None})):  # fmt: skip
        with pytest.raises(EventValidationError) as err:
            parse_event({k: v for k, v in _ev(**extra).items() if v is not None})
        assert err.value.field == field and "366 days" in err.value.reason


def test_never_ended_sentinels_get_a_400_and_leave_the_day_writable(client, store) -> None:
    # Each run from 2026 to 2099: before the bound, 3,960 of them overflowed the day's duration sum.
    sentinel = format_timestamp(4_102_358_400 * 10**9)  # 2099-12-31T00:00:00Z
    runs = [{"run_id": f"forever-{i}", "kind": "run", "start_time": T0 + i * 10**9, "end_time": sentinel}
            for i in range(4_000)]  # fmt: skip
    r = client.post("/api/v1/events", json=runs)
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert {(x["field"], x["error"]) for x in r.get_json()["rejected"]} == {("end_time", "an event lasts at most 366 days")}
    ok = {"run_id": "ok", "kind": "run", "start_time": T0 + 10**9, "duration_ms": 5}
    assert client.post("/api/v1/events", json=[ok]).status_code == 200
    assert store.count_events() == 1


def _heavy_runs(days: int = 3, per_day: int = 3, steps: int = 2) -> list[dict]:
    """Runs whose LLM steps each carry the most tokens: a run's 4 × 2^40 tokens square to 2^84."""
    out = []
    for d in range(days):
        for i in range(per_day):
            rid, start = f"heavy-{d}-{i}", T0 + d * DAY_NS + i * 3_600 * 10**9
            out.append({"run_id": rid, "kind": "run", "start_time": start, "duration_ms": 1_000, "project": "p",
                        "model": "m", "scenario": "s"})  # fmt: skip
            for s in range(steps):
                out.append({"run_id": rid, "kind": "llm", "start_time": start + s, "duration_ms": 10,
                            "usage": {"input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS}})  # fmt: skip
    return out


def test_runs_whose_token_squares_pass_64_bits_are_stored_summed_and_rebuilt(client, store, monkeypatch) -> None:
    r = client.post("/api/v1/events", json=_heavy_runs())
    assert r.status_code == 200, r.get_data(as_text=True)[:300]  # a 500 before 0023
    assert r.get_json()["accepted"] == 9 * 3
    window = f"from={T0 // 10**6}&to={(T0 + 3 * DAY_NS) // 10**6}"
    answers = {}
    for few in (rollup_reads._FEW_CELLS, 0):  # cells summed in Python, and by SQL sum() (grouped reads)
        monkeypatch.setattr(rollup_reads, "_FEW_CELLS", few)
        got = []
        for url in (f"/api/v1/metrics/summary?{window}", f"/api/v1/metrics/summary?{window}&group_by=project",
                    f"/api/v1/metrics/summary?{window}&kind=llm", f"/api/v1/metrics/timeseries?{window}&step=1d",
                    f"/api/v1/regressions?{window}"):  # fmt: skip
            resp = client.get(url)
            assert resp.status_code == 200, (few, url, resp.get_data(as_text=True)[:300])
            got.append(resp.get_json())
        answers[few] = got
    assert answers[0] == answers[rollup_reads._FEW_CELLS]
    summary, _, steps = answers[0][:3]
    row = summary["rows"][0]
    assert row["runs"] == 9 and row["tokens"]["input"] == row["tokens"]["output"] == 9 * 2 * MAX_TOKENS
    assert steps["rows"][0]["count"] == 18 and steps["rows"][0]["tokens"]["input"] == 18 * MAX_TOKENS
    # Each day's ``total`` cell: three runs of 2^42 tokens, squared: 3 × 2^84 (exact in a float).
    total = next(c for c in CUBES if c.level == "run" and c.name == "total")
    c = rollup_cells.c
    with store.engine.connect() as conn:
        days = conn.execute(sa.select(c.tokens_sq, c.tokens_sq > 2.0**63).where(c.part == part_of(total, None),
                                                                              c.tier == DAY)).all()  # fmt: skip
    assert days == [(3.0 * 2**84, True)] * 3
    before = snapshot(store)
    rebuild_from_scratch(store)
    assert snapshot(store) == before


def test_the_migration_keeps_the_stored_squares_and_sqlite_cells_stay_without_rowid(backend, store) -> None:
    downgrade_schema(store, "0022")  # the integer squares; 0022 keeps the cells
    cell = {"part": 16, "tier": 86400, "bucket_ns": 0, "slice_id": 1, "sketch": b"",
            **{m: i + 1 for i, m in enumerate(ROLLUP_MEASURES)}}  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(sa.insert(rollup_cells).values(cell))
    upgrade_schema(store, "0023")
    with store.engine.connect() as conn:
        (row,) = conn.execute(sa.select(rollup_cells)).mappings().all()
        assert dict(row) == cell
        squares = [row[m] for m in ("tokens_sq", "tool_calls_sq")]
        if backend == "sqlite":
            ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'rollup_cells'").scalar()
            assert "WITHOUT ROWID" in ddl.upper()
            kinds = conn.exec_driver_sql("SELECT typeof(tokens_sq + 0), typeof(n) FROM rollup_cells").one()
            assert tuple(kinds) == ("real", "integer")
    assert all(isinstance(v, float) for v in squares)


def _year_runs(prefix: str, n: int) -> list[dict]:
    """``n`` runs of the longest allowed duration under one label set: 300 × 366 days in ns > 2^63."""
    return [{"run_id": f"{prefix}-{i}", "kind": "run", "start_time": T0 + i * 10**6, "end_time": T0 + i * 10**6
             + MAX_DURATION_NS, "project": "p", "scenario": "s", "model": "m"} for i in range(n)]  # fmt: skip


def _duration_sums(client) -> dict[str, float]:
    body = client.get("/metrics").get_data(as_text=True)
    return {s.name: s.value for fam in text_string_to_metric_families(body) for s in fam.samples
            if s.name in ("hypermind_agent_run_duration_seconds_sum", "gen_ai_client_operation_duration_seconds_sum")
            and s.labels.get("status", "ok") == "ok"}  # fmt: skip


def test_a_year_of_runs_under_one_label_set_stays_writable_and_its_duration_sum_is_exact(client, store) -> None:
    for batch in ("a", "b"):  # one batch whose own delta passed 2^63 ns; then the stored sum's UPSERT
        r = client.post("/api/v1/events", json=_year_runs(batch, 300))
        assert r.status_code == 200, r.get_data(as_text=True)[:300]  # a 500 on both databases before 0024
    expected = 600 * MAX_DURATION_NS / 10**9  # 18,973,440,000 s: every run is a whole number of µs
    sums = _duration_sums(client)
    assert sums == {"hypermind_agent_run_duration_seconds_sum": expected,
                    "gen_ai_client_operation_duration_seconds_sum": expected}  # fmt: skip
    window = f"from={T0 // 10**6}&to={(T0 + DAY_NS) // 10**6}"
    assert client.get(f"/api/v1/metrics/summary?{window}").get_json()["rows"][0]["runs"] == 600


def test_durations_are_rounded_to_the_microsecond_once_per_observation(client, store) -> None:
    runs = [{"run_id": f"r{i}", "kind": "run", "start_time": T0, "end_time": T0 + ns, "project": "p"}
            for i, ns in enumerate((1_499, 1_500, 2_000_000_000))]  # fmt: skip
    assert client.post("/api/v1/events", json=runs).status_code == 200
    # 1,499 ns → 1 µs, 1,500 ns → 2 µs (halves up), 2 s exactly: the buckets still from the ns values.
    assert _duration_sums(client)["hypermind_agent_run_duration_seconds_sum"] == (1 + 2 + 2_000_000) / 10**6


def _view(store) -> dict[tuple[int, int], tuple]:
    c = export_series.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(c.series_id, c.slot, c.metric, c.value, c.ex_value)).all()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def test_migration_0024_converts_the_stored_duration_sums_and_exemplars_and_back(client, store) -> None:
    runs = [{"run_id": f"m{i}", "kind": "run", "start_time": T0 + i * 10**9, "duration_ms": 1_000 + i,
             "project": "p", "model": "m", "usage": {"input_tokens": 7}} for i in range(5)]  # fmt: skip
    assert client.post("/api/v1/events", json=runs).status_code == 200
    now = _view(store)
    durations = {k for k, (metric, _, _) in now.items() if metric.endswith(".duration")}
    assert durations and len(durations) < len(now)  # tokens and counters are in the view too
    downgrade_schema(store, "0023")
    old = _view(store)
    for k, (metric, value, ex) in now.items():
        if k in durations:
            scaled = value * 1000 if k[1] == -1 else value
            assert old[k] == (metric, scaled, None if ex is None else ex * 1000), k
        else:
            assert old[k] == now[k], k  # counts, token sums and their exemplars as they were
    c = export_series.c
    sid = next(k for k in durations if k[1] == -1)
    with store.engine.begin() as conn:  # a sum of nanoseconds that is not a whole number of µs
        conn.execute(sa.update(export_series).where(c.series_id == sid[0], c.slot == -1).values(value=7_499))
    upgrade_schema(store, "0024")
    back = _view(store)
    assert back[sid][1] == 7 and {k: v for k, v in back.items() if k != sid} == {k: v for k, v in now.items() if k != sid}
