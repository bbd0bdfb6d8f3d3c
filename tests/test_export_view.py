"""The exported-series view: /metrics is the store's truth for every process, door and restart.

Each "what is wrong today" item of issue #8 has a test here that fails on the in-memory SDK exporter.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from hypermindlabs import conventions as c
from hypermindlabs.config import Settings
from hypermindlabs.core.events import parse_event
from hypermindlabs.core.filters import Filters
from hypermindlabs.demo import load_demo
from hypermindlabs.export.admission import WindowCaps
from hypermindlabs.export.facts import Deltas, add_run, series_id
from hypermindlabs.export.view import rebuild_on
from hypermindlabs.store.export_series import fetch_runs, read_series
from hypermindlabs.web import create_app

T0 = 1_780_000_000_000_000_000  # 2026-05-28, ns
S = 1_000_000_000


def _run(rid: str, i: int, *, status: str = "ok", model: str = "gpt-4o", run_tokens: bool = False,
         llm: int = 1, tools: int = 1, failed_tools: int = 0, project: str = "acme") -> list[dict]:  # fmt: skip
    trace = f"{(hash(rid) & (2**120 - 1)) | 1:032x}"
    start = T0 + i * S
    evs = []
    for k in range(llm):
        evs.append({"event_id": f"{rid}-llm{k}", "run_id": rid, "kind": "llm", "trace_id": trace,
                    "span_id": f"{0x100 + k:016x}", "parent_span_id": f"{1:016x}", "start_time": start,
                    "end_time": start + (k + 1) * S // 3, "status": "ok", "model": model,
                    "usage": {"input_tokens": 100 + k, "output_tokens": 7}})  # fmt: skip
    for k in range(tools):
        bad = k < failed_tools
        evs.append({"event_id": f"{rid}-tool{k}", "run_id": rid, "kind": "tool", "trace_id": trace,
                    "span_id": f"{0x200 + k:016x}", "parent_span_id": f"{1:016x}", "start_time": start,
                    "end_time": start + S // 10, "status": "error" if bad else "ok", "tool": f"search{k % 2}",
                    **({"error": {"type": "TimeoutError", "message": "tool timed out after 30s"}} if bad else {})})  # fmt: skip
    run = {"event_id": f"{rid}-run", "run_id": rid, "kind": "run", "trace_id": trace, "span_id": f"{1:016x}",
           "start_time": start, "end_time": start + 2 * S + i * 1000, "status": status, "project": project,
           "scenario": "refund", "model": model}  # fmt: skip
    if status == "error":
        run["error"] = {"type": "TimeoutError", "message": "tool timed out after 30s"}
    if run_tokens:
        run["usage"] = {"input_tokens": 1000, "output_tokens": 50}
    return [*evs, run]


def _append(store, raw: list[dict]) -> None:
    result = store.append([parse_event(e) for e in raw])
    assert not result.rejected


def _scrape(pipeline, accept: str = "") -> dict[tuple[str, tuple], float]:
    app = create_app(Settings(database_url="unused"), pipeline=pipeline)
    body = app.test_client().get("/metrics", headers={"Accept": accept} if accept else {}).data.decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples: dict, name: str, **match: str) -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and all((k, m) in labels for k, m in match.items()))


def test_a_second_process_ingesting_into_the_database_is_counted_by_the_serving_process(make_pipeline):
    serving = make_pipeline()
    other = make_pipeline()  # the CLI, the demo loader, a RunManager or another worker
    _append(other.store, [e for i in range(7) for e in _run(f"r{i}", i)])
    samples = _scrape(serving)
    assert _sum(samples, c.PROM_AGENT_RUNS) == 7
    # a restart: a fresh pipeline on the same database serves the same numbers, never fewer
    restarted = make_pipeline()
    assert _sum(_scrape(restarted), c.PROM_AGENT_RUNS) == 7


def test_run_tokens_come_from_the_llm_steps_when_the_run_carries_none_and_equal_the_api(make_pipeline, client=None):
    p = make_pipeline()
    _append(p.store, _run("a", 1, llm=3) + _run("b", 2, llm=2, run_tokens=True))
    samples = _scrape(p)
    got_in = _sum(samples, c.PROM_AGENT_RUN_TOKENS_SUM, gen_ai_token_type="input")
    got_out = _sum(samples, c.PROM_AGENT_RUN_TOKENS_SUM, gen_ai_token_type="output")
    # run a: its steps (100 + 101 + 102 in, 3 × 7 out); run b: its own usage (1000 in, 50 out)
    assert (got_in, got_out) == (303 + 1000, 21 + 50)
    app = create_app(Settings(database_url="unused"), pipeline=p)
    api = app.test_client().get(f"/api/v1/metrics/summary?from={T0 // 10**6}&to={(T0 + 60 * S) // 10**6}").get_json()
    tokens = api["rows"][0]["tokens"]
    assert (tokens["input"], tokens["output"]) == (got_in, got_out)


def test_a_failed_run_counts_once_in_run_failures_and_each_failed_step_once_in_step_errors(make_pipeline):
    p = make_pipeline()
    _append(p.store, _run("bad", 1, status="error", tools=3, failed_tools=2) + _run("good", 2))
    samples = _scrape(p)
    assert _sum(samples, c.PROM_AGENT_RUN_FAILURES) == 1
    assert _sum(samples, c.PROM_STEP_ERRORS) == 2
    assert _sum(samples, c.PROM_STEP_ERRORS, kind="tool") == 2
    failure = next(labels for (n, labels), v in samples.items() if n == c.PROM_AGENT_RUN_FAILURES and v)
    assert dict(failure)["failure_class"] != c.UNKNOWN_ERROR_CLASS


def test_exemplars_carry_run_ids_that_resolve_through_the_api(make_pipeline):
    p = make_pipeline()
    _append(p.store, [e for i in range(5) for e in _run(f"r{i}", i)])
    app = create_app(Settings(database_url="unused"), pipeline=p)
    client = app.test_client()
    body = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}).data.decode()
    run_ids = set()
    for fam in openmetrics_families(body):
        for s in fam.samples:
            if s.exemplar is not None:
                run_ids.add(s.exemplar.labels["run_id"])
    assert run_ids
    for rid in run_ids:
        assert client.get(f"/api/v1/runs/{rid}").status_code == 200


def _late_children(raw: list[dict]) -> tuple[list[dict], list[dict]]:
    run = [e for e in raw if e["kind"] == "run"]
    kids = [e for e in raw if e["kind"] != "run"]
    return kids[: len(kids) // 2] + run, kids[len(kids) // 2 :]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rebuilding_the_view_from_raw_events_equals_the_incremental_writes(make_pipeline, seed):
    rng = random.Random(seed)
    p = make_pipeline()
    batches: list[list[dict]] = []
    late: list[dict] = []
    for i in range(40):
        raw = _run(f"r{seed}-{i}", i, status=rng.choice(["ok", "ok", "error"]), model=rng.choice(["gpt-4o", "claude-3"]),
                   llm=rng.randint(0, 3), tools=rng.randint(0, 3), failed_tools=rng.randint(0, 1),
                   run_tokens=rng.random() < 0.3)  # fmt: skip
        if rng.random() < 0.3:
            first, rest = _late_children(raw)  # steps arriving after their run: retract and re-add
            batches.append(first)
            late.extend(rest)
        else:
            rng.shuffle(raw)
            batches.append(raw)
    rng.shuffle(late)
    batches.extend([late[i : i + 5] for i in range(0, len(late), 5)])
    for b in batches:
        if b:
            _append(p.store, b)
    with p.store.engine.connect() as conn:
        incremental = read_series(conn)
    with p.store.engine.begin() as conn:
        rebuild_on(conn, p.export.caps)
    with p.store.engine.connect() as conn:
        rebuilt = read_series(conn)

    def values(rows):
        return {(r.series_id, r.slot): (r.metric, r.labels, r.value) for r in rows if r.value != 0}

    assert values(rebuilt) == values(incremental)
    assert sum(r.value for r in rebuilt if r.metric == c.AGENT_RUNS.name) == 40
    _assert_exemplars_match(p, incremental, rebuilt)


def _exemplar(r) -> tuple | None:
    return None if r.ex_ts_ns is None else (r.ex_ts_ns, r.ex_run_id, r.ex_trace_id, r.ex_value)


def _assert_exemplars_match(p, incremental, rebuilt) -> None:
    """Exemplars of the incremental view equal the rebuilt ones, but where they legitimately differ.

    A bucket's exemplar is the newest (end time, run_id, value) observation ever *added* to it; a
    retraction never removes one (the exemplar a bucket showed stays a real stored run). So when a
    late step moves a run's observation to another bucket (its step-derived tokens grew), the old
    bucket keeps naming that run incrementally, while a rebuild, which never saw the old
    observation, names the newest run still in it. Everywhere else they must be equal; where they
    differ, the incremental exemplar must name a run that no longer observes into that bucket and
    be at least as new as the rebuilt one.
    """
    built = {(r.series_id, r.slot): _exemplar(r) for r in rebuilt if r.value != 0}
    compared = differing = 0
    for r in incremental:
        if r.value == 0:
            continue
        got, want = _exemplar(r), built.get((r.series_id, r.slot))
        compared += got is not None
        if got == want:
            continue
        differing += 1
        assert got is not None, (r.metric, r.labels, r.slot)
        assert want is None or (got[0], got[1], got[3]) > (want[0], want[1], want[3]), (r.metric, r.slot, got, want)
        assert (r.series_id, r.slot) not in _current_buckets(p, got[1]), (r.metric, r.labels, r.slot, got, want)
    assert compared > 0
    # Only run-level token buckets can be left by a run (every other observation keeps its bucket).
    assert differing <= sum(1 for r in incremental if r.metric == c.AGENT_RUN_TOKENS.name)


def _current_buckets(p, run_id: str) -> set[tuple[int, int]]:
    """The (series, bucket) pairs the stored run ``run_id`` observes into now, from its raw events."""
    with p.store.engine.connect() as conn:
        evs = fetch_runs(conn, [run_id])[run_id]
    acc = Deltas()
    run = next(e for e in evs if e["kind"] == "run")
    add_run(acc, run, [e for e in evs if e["kind"] != "run"], lambda label, raw, sign: raw or None)
    return {(series_id(m, labels), slot) for _, slot, m, labels, *_ in acc.rows()}


def test_the_rebuilt_view_equals_the_incremental_one_with_its_exemplars_when_no_run_changes(make_pipeline):
    """Without late steps no observation ever moves: every exemplar is equal, bucket by bucket."""
    rng = random.Random(11)
    p = make_pipeline()
    runs = [_run(f"s{i}", i, status=rng.choice(["ok", "error"]), llm=rng.randint(0, 3), tools=rng.randint(0, 2),
                 failed_tools=rng.randint(0, 1)) for i in range(30)]  # fmt: skip
    rng.shuffle(runs)
    # Each run's event after its steps (the steps often in an earlier batch): counted when it arrives.
    raw = [e for evs in runs for e in evs]
    for i in range(0, len(raw), 17):
        _append(p.store, raw[i : i + 17])
    with p.store.engine.connect() as conn:
        incremental = read_series(conn)
    with p.store.engine.begin() as conn:
        rebuild_on(conn, p.export.caps)
    with p.store.engine.connect() as conn:
        rebuilt = read_series(conn)
    full = {(r.series_id, r.slot): (r.value, _exemplar(r)) for r in incremental}
    assert full == {(r.series_id, r.slot): (r.value, _exemplar(r)) for r in rebuilt}
    assert sum(1 for v in full.values() if v[1] is not None) > 10


def test_after_the_demo_workload_metrics_count_every_stored_run_and_its_tokens_as_the_api(make_pipeline):
    """Issue #8 acceptance: after the demo, sum(hypermind_agent_runs_total) is the store's run count
    and the token series equal the API's token totals (real and estimated, input and output)."""
    p = make_pipeline()
    end = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    load_demo(p.store, seed=7, days=2, runs_per_day=120, end=end, progress=False)
    samples = _scrape(p)
    stored_runs = len(p.store.run_ids(Filters()))
    assert stored_runs > 100
    assert _sum(samples, c.PROM_AGENT_RUNS) == stored_runs
    app = create_app(Settings(database_url="unused"), pipeline=p)
    to_ms = int(end.timestamp() * 1000) + 86_400_000
    api = app.test_client().get(f"/api/v1/metrics/summary?from={to_ms - 5 * 86_400_000}&to={to_ms}").get_json()
    row = api["rows"][0]
    assert row["runs"] == stored_runs
    tokens = row["tokens"]
    got = {
        (side, estimated): _sum(samples, c.PROM_AGENT_RUN_TOKENS_SUM, gen_ai_token_type=side, estimated=estimated)
        for side in ("input", "output") for estimated in ("false", "true")
    }  # fmt: skip
    assert got == {
        ("input", "false"): tokens["input"], ("output", "false"): tokens["output"],
        ("input", "true"): tokens["input_proxy"], ("output", "true"): tokens["output_proxy"],
    }  # fmt: skip
    assert tokens["input"] > 0 and tokens["output"] > 0


def test_a_flood_of_names_cannot_lock_out_a_real_model_and_active_values_keep_their_names(make_pipeline):
    now = [T0]
    p = make_pipeline()
    caps = WindowCaps({**c.DEFAULT_LABEL_BUDGETS, c.BUDGET_MODEL: 50}, window_s=600, clock=lambda: now[0])
    folds = []
    with p.store.engine.begin() as conn:
        cap = caps.bind(conn, lambda label, sign: folds.append(label))
        assert cap(c.BUDGET_MODEL, "gpt-4o", 1) == "gpt-4o"  # a real model, active before the flood
        for k in range(100_000):
            cap(c.BUDGET_MODEL, f"junk-{k}", 1)
            if k % 10_000 == 0:
                now[0] += 60 * S  # the flood lasts ~10 minutes; gpt-4o keeps sending throughout
                assert cap(c.BUDGET_MODEL, "gpt-4o", 1) == "gpt-4o"
        cap.flush()
    assert len(folds) == 100_000 - 49
    # the flood stops; a new real model keeps sending: folded at first, a label within the window
    admitted_at = None
    for minute in range(1, 30):
        now[0] += 60 * S
        with p.store.engine.begin() as conn:
            cap = caps.bind(conn, lambda label, sign: None)
            if cap(c.BUDGET_MODEL, "claude-4", 1) == "claude-4" and admitted_at is None:
                admitted_at = minute
            assert cap(c.BUDGET_MODEL, "gpt-4o", 1) == "gpt-4o"
            cap.flush()
    assert admitted_at is not None and admitted_at <= 10 + 1  # window (10 min) after the last junk value
    # another process (fresh caps on the same database) agrees on the admitted set
    other = WindowCaps({**c.DEFAULT_LABEL_BUDGETS, c.BUDGET_MODEL: 50}, window_s=600, clock=lambda: now[0])
    with p.store.engine.begin() as conn:
        cap = other.bind(conn, lambda label, sign: None)
        assert cap(c.BUDGET_MODEL, "claude-4", 1) == "claude-4"
        assert cap(c.BUDGET_MODEL, "gpt-4o", 1) == "gpt-4o"


def test_without_a_token_the_app_answers_loopback_clients_only_whatever_server_runs_it(make_pipeline):
    import web_ui

    app = web_ui.create_app(Settings(database_url="unused"), pipeline=make_pipeline())
    client = app.test_client()
    remote = {"REMOTE_ADDR": "10.1.2.3"}
    for path in ("/metrics", "/api/v1/runs"):
        r = client.get(path, environ_base=remote)
        assert r.status_code == 403 and r.get_json()["field"] == "Authorization"
        assert client.get(path).status_code == 200  # the test client is 127.0.0.1
    assert client.get("/healthz", environ_base=remote).status_code == 200
    guarded = web_ui.create_app(Settings(database_url="unused", api_token="s3cret"), pipeline=make_pipeline())
    r = guarded.test_client().get("/metrics", environ_base=remote, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200
