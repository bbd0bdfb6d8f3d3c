"""``GET /api/v1/metrics/summary|timeseries`` against answers computed here from the raw runs.

Counts, rates, tokens and calls are exact; p50/p95/p99 are within 1 % (relative) of the exact
nearest-rank percentile (the ``ceil(q·n)``-th smallest duration); every row's ``runs_url`` lists
exactly the runs behind it (checked through ``GET /api/v1/runs``).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from hypermindlabs.config import Settings
from hypermindlabs.core.sketch import nearest_rank
from hypermindlabs.ingest import ingest_objects
from tests.conftest import FIXED_NOW_NS
from tests.test_rollups import (
    DAY,
    HOUR,
    MIN,
    MS,
    T0,
    Run,
    Step,
    build_runs,
    enrich,
    ingest,
    to_events,
    usage_tokens,
)  # fmt: skip

# A window that starts and ends off the minute, so every tier serves a part of it: minutes at the
# edges, then quarters, hours and one whole day in the middle.
FROM_NS = T0 + 7 * MIN + 30_250 * MS
TO_NS = T0 + DAY + 25 * HOUR + 10 * MIN + 10_000 * MS
EFF_FROM = T0 + 7 * MIN
EFF_TO = T0 + DAY + 25 * HOUR + 11 * MIN


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request, tmp_path_factory):
    """One store with the synthetic runs per backend, shared (read only) by this module's tests."""
    from hypermindlabs.web import create_app
    from tests.conftest import PG_URL, _drop_schema, _pg_schema_pipeline, open_pipeline, postgres_available, require

    schema = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "postgres":
        require(postgres_available(), f"PostgreSQL at {PG_URL}")
        pipeline = _pg_schema_pipeline(schema, enricher=enrich)
    else:
        pipeline = open_pipeline(f"sqlite:///{tmp_path_factory.mktemp('world') / 'events.db'}", enricher=enrich)
    store = pipeline.store
    runs = build_runs(42, 150, T0, 2 * DAY)
    ingest(store, to_events(runs, seed=42), batch=300)
    app = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: FIXED_NOW_NS)
    yield app.test_client(), runs, store
    store.close()
    if request.param == "postgres":
        _drop_schema(schema)


def _get(client, path: str, params: dict[str, str]) -> dict[str, Any]:
    r = client.get(f"{path}?{urlencode(params)}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _run_ids(client, url: str) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        r = client.get(url + "&limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        ids |= {x["run_id"] for x in body["runs"]}
        cursor = body["next_cursor"]
        if not cursor:
            return ids


# -- the truth, from the raw runs ---------------------------------------------------------------
def _csv(params: dict[str, str], key: str) -> set[str] | None:
    return set(params[key].split(",")) if key in params else None


def run_matches(r: Run, f: dict[str, str]) -> bool:
    for dim in ("project", "model", "scenario"):
        if dim in f and getattr(r, dim) not in _csv(f, dim):
            return False
    if "tool" in f and not r.tools & _csv(f, "tool"):
        return False
    for key in f:
        if key.startswith("tag.") and r.tags.get(key[4:]) not in _csv(f, key):
            return False
    if "status" in f and r.status not in _csv(f, "status"):
        return False
    return "error_class" not in f or r.failure_class in _csv(f, "error_class")


def run_groups(r: Run, group_by: list[str], f: dict[str, str]) -> Iterable[tuple[Any, ...]]:
    """A run's group keys: one per combination (a run is in every group of each tool it used)."""
    options = []
    for g in group_by:
        if g in ("project", "model", "scenario"):
            options.append([getattr(r, g)])
        elif g == "kind":
            options.append(["run"])
        elif g == "error_class":
            options.append([r.failure_class])
        elif g == "tool":
            options.append(sorted(r.tools & _csv(f, "tool") if "tool" in f else r.tools))
        else:
            options.append([r.tags[g[4:]]] if g[4:] in r.tags else [])
    return itertools.product(*options)


def expected_runs(
    runs: list[Run], f: dict[str, str], group_by: list[str], a: int, b: int
) -> dict[tuple, list[Run]]:
    out: dict[tuple, list[Run]] = {}
    for r in runs:
        if a <= r.start_ns < b and run_matches(r, f):
            for key in run_groups(r, group_by, f):
                out.setdefault(key, []).append(r)
    return out


def check_latency(row: dict[str, Any], durations_ms: list[float]) -> None:
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        exact = nearest_rank(durations_ms, q)
        got = row["latency_ms"][name]
        assert abs(got - exact) <= 0.01 * exact * (1 + 1e-9), (name, got, exact)


def check_run_row(row: dict[str, Any], rs: list[Run]) -> None:
    n = len(rs)
    errors = sum(r.status == "error" for r in rs)
    assert (row["runs"], row["count"], row["errors"]) == (n, n, errors)
    assert row["success_rate"] == (n - errors) / n and row["failure_rate"] == errors / n
    check_latency(row, [r.dur_ms for r in rs])
    assert row["latency_ms"]["mean"] == pytest.approx(sum(r.dur_ns // 1000 for r in rs) / n / 1000, rel=1e-12)
    tokens = [sum(t) for t in zip(*(r.tokens() for r in rs), strict=True)]
    assert [row["tokens"][k] for k in ("input", "output", "input_proxy", "output_proxy")] == tokens
    tool_calls = sum(s.kind == "tool" for r in rs for s in r.steps)
    assert row["tool_calls"] == tool_calls and row["tool_calls_per_run"] == tool_calls / n
    assert row["llm_calls"] == sum(s.kind == "llm" for r in rs for s in r.steps)
    classes = Counter(r.failure_class for r in rs if r.status == "error")
    assert [(e["error_class"], e["count"]) for e in row["error_classes"]] == sorted(
        classes.items(), key=lambda kv: (-kv[1], kv[0])
    )
    assert all(e["rate"] == e["count"] / n for e in row["error_classes"])


FILTERS = {
    "no filter": {},
    "one project": {"project": "alpha"},
    "any of two projects": {"project": "alpha,gamma"},
    "one model": {"model": "m-small"},
    "one scenario": {"scenario": "refund"},
    "runs that used a tool": {"tool": "search"},
    "runs that used any of two tools (one a retrieval)": {"tool": "crm,kb"},
    "a tag": {"tag.env": "prod"},
    "any of two values of a tag": {"tag.tier": "free,enterprise"},
    "two tags": {"tag.env": "staging", "tag.tier": "pro"},
    "a tag and a tool": {"tag.env": "prod", "tool": "fetch"},
    "failed runs": {"status": "error"},
    "one error class": {"error_class": "rate_limit"},
    "a project, a model and a tag": {"project": "beta", "model": "m-large", "tag.env": "prod"},
}

GROUPS = {
    "no grouping": [],
    "by project": ["project"],
    "by model": ["model"],
    "by scenario": ["scenario"],
    "by kind": ["kind"],
    "by error class": ["error_class"],
    "by tool used": ["tool"],
    "by a tag": ["tag.env"],
    "by project and a tag": ["project", "tag.tier"],
    "by tool and a tag": ["tool", "tag.env"],
    "by model and error class": ["model", "error_class"],
    "by two tags": ["tag.env", "tag.tier"],
}


@pytest.mark.parametrize("group_name", GROUPS)
def test_summary_rows_match_the_raw_runs_for_every_filter(world, group_name: str) -> None:
    client, runs, _ = world
    group_by = GROUPS[group_name]
    for name, f in FILTERS.items():
        params = {**f, "from": str(FROM_NS // MS), "to": str(TO_NS // MS)}
        if group_by:
            params["group_by"] = ",".join(group_by)
        body = _get(client, "/api/v1/metrics/summary", params)
        assert (body["from_ms"], body["to_ms"]) == (EFF_FROM // MS, EFF_TO // MS)
        want = expected_runs(runs, f, group_by, EFF_FROM, EFF_TO)
        got = {tuple(row["group"][g] for g in group_by): row for row in body["rows"]}
        if not group_by and not want:
            assert got[()]["runs"] == 0
            continue
        assert set(got) == set(want), (name, sorted(got, key=str), sorted(want, key=str))
        for key, rs in want.items():
            row = got[key]
            check_run_row(row, rs)
            if any(v is None and g != "error_class" for g, v in zip(group_by, key, strict=True)):
                assert row["runs_url"] is None  # "no project" is not a run-list filter
                continue
            assert row["runs_url_exact"] is True, (name, key)
            assert _run_ids(client, row["runs_url"]) == {r.run_id for r in rs}, (name, key)


STEP_CASES = {
    "tool calls by tool": ({"kind": "tool"}, ["tool"]),
    "LLM calls by model": ({"kind": "llm"}, ["model"]),
    "LLM calls of one project by model and error class": (
        {"kind": "llm", "project": "alpha"},
        ["model", "error_class"],
    ),
    "tool calls on two tools, by kind": ({"kind": "tool,retrieval", "tool": "search,kb"}, ["kind"]),
    "tool calls of runs with a tag, by tool": ({"kind": "tool", "tag.env": "prod"}, ["tool"]),
    "failed tool calls by project": ({"kind": "tool", "status": "error"}, ["project"]),
    "all step kinds by scenario and a tag": ({"kind": "tool,llm,retrieval"}, ["scenario", "tag.tier"]),
}


@pytest.mark.parametrize("case", STEP_CASES)
def test_step_rows_match_the_raw_steps(world, case: str) -> None:
    client, runs, _ = world
    f, group_by = STEP_CASES[case]
    params = {**f, "group_by": ",".join(group_by), "from": str(FROM_NS // MS), "to": str(TO_NS // MS)}
    body = _get(client, "/api/v1/metrics/summary", params)
    # Step answers are widened to whole quarters, or whole hours when only the step ``full`` cube
    # answers them (a tag filter or tag group on steps).
    grain = HOUR if any(k.startswith("tag.") for k in [*f, *group_by]) else 15 * MIN
    eff_from, eff_to = FROM_NS - FROM_NS % grain, -(-TO_NS // grain) * grain
    assert (body["from_ms"], body["to_ms"]) == (eff_from // MS, eff_to // MS)
    kinds = set(f["kind"].split(","))
    want: dict[tuple, list[tuple[Run, Step]]] = {}
    for r in runs:
        if not eff_from <= r.start_ns < eff_to:
            continue
        for s in r.steps:
            d = r.step_dims(s)
            fc = s.error_class or ("unknown" if s.status == "error" else None)
            if s.kind not in kinds or ("status" in f and s.status != f["status"]):
                continue
            if any(k in f and d[k] not in f[k].split(",") for k in ("project", "tool")):
                continue
            if any(k.startswith("tag.") and r.tags.get(k[4:]) != v for k, v in f.items()):
                continue
            key = tuple(
                fc if g == "error_class" else r.tags.get(g[4:]) if g.startswith("tag.") else d[g]
                for g in group_by
            )
            if any(g.startswith("tag.") and r.tags.get(g[4:]) is None for g in group_by):
                continue
            want.setdefault(key, []).append((r, s))
    got = {tuple(row["group"][g] for g in group_by): row for row in body["rows"]}
    assert set(got) == set(want)
    for key, pairs in want.items():
        row, steps = got[key], [s for _, s in pairs]
        n, errors = len(steps), sum(s.status == "error" for s in steps)
        assert (row["steps"], row["errors"]) == (n, errors)
        check_latency(row, [s.dur_ns / 1e6 for s in steps])
        tokens = [0, 0, 0, 0]
        for s in steps:
            if s.usage:
                tokens = [a + b for a, b in zip(tokens, usage_tokens(s.usage), strict=True)]
        assert [row["tokens"][k] for k in ("input", "output", "input_proxy", "output_proxy")] == tokens
        assert "tool_calls" not in row
        # The drill-down lists the runs containing these steps (step status is no run filter), as
        # far as the steps carry their run's dimensions; it is flagged as not exact.
        assert row["runs_url_exact"] is False
        inherited = {r.run_id for r, s in pairs if not s.own_dims and s.model in (None, r.model)}
        if row["runs_url"] is not None and inherited:
            assert inherited <= _run_ids(client, row["runs_url"])


@pytest.mark.parametrize(
    ("group_by", "step"),
    [([], "1h"), (["project"], "3600"), (["tool"], "2h"), (["tag.env"], "15m"), (["error_class"], "1d")],
    ids=[
        "total hourly",
        "by project hourly",
        "by tool every 2 h",
        "by tag every 15 min",
        "by error class daily",
    ],
)
def test_timeseries_points_count_the_runs_starting_in_each_step(
    world, group_by: list[str], step: str
) -> None:
    client, runs, _ = world
    params = {"from": str(FROM_NS // MS), "to": str(TO_NS // MS), "step": step}
    if group_by:
        params["group_by"] = ",".join(group_by)
    body = _get(client, "/api/v1/metrics/timeseries", params)
    step_ns = body["step_seconds"] * 10**9
    a, b = body["from_ms"] * MS, body["to_ms"] * MS
    assert a <= FROM_NS and b >= TO_NS and a % step_ns == 0 and b % step_ns == 0
    want = expected_runs(runs, {}, group_by, a, b)
    series = {tuple(s["group"][g] for g in group_by): s["points"] for s in body["series"]}
    assert set(series) == set(want)
    checked = 0
    for key, points in series.items():
        assert len(points) == (b - a) // step_ns
        assert [p["t"] * MS for p in points] == list(range(a, b, step_ns))
        for p in points:
            t = p["t"] * MS
            rs = [r for r in want[key] if t <= r.start_ns < t + step_ns]
            if not rs:
                assert p["count"] == 0 and p["latency_ms"]["p50"] is None and p["success_rate"] is None
                continue
            check_run_row(p, rs)
            if checked < 12 and None not in key:  # drill-down of a sample of points
                assert _run_ids(client, p["runs_url"]) == {r.run_id for r in rs}
                checked += 1


@pytest.mark.parametrize(
    ("window", "step_s", "points"),
    [(HOUR, 60, 60), (6 * HOUR, 300, 72), (DAY, 900, 96), (7 * DAY, 7200, 84), (14 * DAY, 10800, 112),
     (30 * DAY, 21600, 120)],
    ids=["1 h → 1 min", "6 h → 5 min", "24 h → 15 min", "7 d → 2 h", "14 d → 3 h", "30 d → 6 h"],
)  # fmt: skip
def test_the_automatic_step_gives_about_a_hundred_points(
    client, window: int, step_s: int, points: int
) -> None:
    body = _get(client, "/api/v1/metrics/timeseries", {"from": str((FIXED_NOW_NS - window) // MS)})
    assert body["step_seconds"] == step_s and body["step_auto"] is True
    assert len(body["series"][0]["points"]) == points


def _edge_runs(edge: int) -> list[Run]:
    def run(rid: str, start: int) -> Run:
        return Run(rid, start, 1500 * MS, "ok", "alpha", "checkout", "m-small", {"env": "prod"}, None, None)

    return [run("before", edge - 1), run("on-edge", edge), run("after", edge + 1)]


@pytest.mark.parametrize(
    "edge",
    [T0 + 2 * DAY, T0 + 2 * DAY + 5 * HOUR, T0 + 2 * DAY + 5 * HOUR + 45 * MIN, T0 + 2 * DAY + 7 * MIN],
    ids=["day edge", "hour edge", "quarter edge", "minute edge"],
)
def test_a_run_on_a_bucket_edge_is_counted_once_in_the_bucket_it_starts(make_pipeline, edge: int) -> None:
    from hypermindlabs.web import create_app

    pipeline = make_pipeline(enricher=enrich)
    store = pipeline.store
    ingest(store, to_events(_edge_runs(edge)))
    client = create_app(
        Settings(database_url="unused"), pipeline=pipeline, clock=lambda: FIXED_NOW_NS
    ).test_client()

    def runs_in(a: int, b: int, **extra: str) -> int:
        body = _get(client, "/api/v1/metrics/summary", {"from": str(a // MS), "to": str(b // MS), **extra})
        return body["rows"][0]["runs"]

    for width in (MIN, 15 * MIN, HOUR, DAY):
        assert runs_in(edge - width, edge) == 1, width
        assert runs_in(edge, edge + width) == 2, width
        assert runs_in(edge - width, edge + width) == 3, width
        assert runs_in(edge, edge + width, **{"tag.env": "prod", "tool": "none"}) == 0
    body = _get(
        client,
        "/api/v1/metrics/timeseries",
        {"from": str((edge - HOUR) // MS), "to": str((edge + HOUR) // MS), "step": "1m"},
    )
    counts = {p["t"] * MS: p["count"] for p in body["series"][0]["points"] if p["count"]}
    assert counts == {edge - MIN: 1, edge: 2}


def test_mixed_timestamp_units_land_in_the_same_bucket_with_the_same_duration(make_pipeline) -> None:
    from hypermindlabs.web import create_app

    pipeline = make_pipeline(enricher=enrich)
    store = pipeline.store
    start, end = T0 + 3 * HOUR + 17 * MIN + 12_345 * MS, T0 + 3 * HOUR + 17 * MIN + 14_845 * MS
    forms = {
        "rfc3339": ("2025-12-29T03:17:12.345Z", "2025-12-29T03:17:14.845Z"),
        "epoch s": (start / 1e9, end / 1e9),
        "epoch ms": (start // MS, end // MS),
        "epoch µs": (start // 1000, end // 1000),
        "epoch ns": (start, end),
    }
    evs = [
        {"run_id": name, "kind": "run", "start_time": a, "end_time": b, "project": "alpha"}
        for name, (a, b) in forms.items()
    ]
    evs.append(
        {
            "run_id": "duration",
            "kind": "run",
            "start_time": start // MS,
            "duration_ms": 2500,
            "project": "alpha",
        }
    )
    ingest(store, evs)
    # Epochs as strings are refused (strict parsing, issue #7): they are JSON numbers.
    refused = ingest_objects(store, [{"run_id": "ms strings", "kind": "run", "start_time": str(start // MS),
                                      "end_time": str(end // MS), "project": "alpha"}])  # fmt: skip
    assert [(r.index, r.field) for r in refused.rejected] == [(0, "start_time")]
    client = create_app(
        Settings(database_url="unused"), pipeline=pipeline, clock=lambda: FIXED_NOW_NS
    ).test_client()
    minute = start - start % MIN
    body = _get(
        client, "/api/v1/metrics/summary", {"from": str(minute // MS), "to": str((minute + MIN) // MS)}
    )
    [row] = body["rows"]
    assert row["runs"] == 6
    assert all(abs(row["latency_ms"][p] - 2500.0) <= 25.0 for p in ("p50", "p95", "p99"))
    assert row["latency_ms"]["mean"] == 2500.0
    assert _run_ids(client, row["runs_url"]) == set(forms) | {"duration"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "customer"}, "group_by"),
        ({"group_by": "tag.bad key"}, "group_by"),
        ({"group_by": "project,model,scenario,tool"}, "group_by"),
        ({"kind": "span"}, "kind"),
        ({"kind": "run,tool"}, "kind"),
        ({"step": "30s"}, "step"),
        ({"step": "soon"}, "step"),
        ({"step": "1m", "from": "now-30d"}, "step"),
        ({"from": "yesterday"}, "from"),
        ({"from": "now-1h", "to": "now-2h"}, "to"),
        ({"cluster": "c1"}, "cluster"),
        ({"limit": "0"}, "limit"),
        ({"colour": "blue"}, "colour"),
    ],
    ids=[
        "an unknown group_by", "a bad tag key in group_by", "more than three group_by", "an unknown kind",
        "run mixed with step kinds", "a step below a minute", "a step that is no duration", "too many points",
        "an unreadable from", "to before from", "a cluster filter", "a zero limit", "an unknown parameter",
    ],
)  # fmt: skip
def test_bad_parameters_answer_400_naming_the_field(client, params: dict[str, str], field: str) -> None:
    path = "/api/v1/metrics/timeseries" if "step" in params else "/api/v1/metrics/summary"
    r = client.get(f"{path}?{urlencode(params)}")
    assert r.status_code == 400
    body = r.get_json()
    assert body["field"] == field and body["error"]


def test_a_step_on_the_summary_is_refused(client) -> None:
    r = client.get("/api/v1/metrics/summary?step=1h")
    assert r.status_code == 400 and r.get_json()["field"] == "step"


def test_the_default_window_is_the_last_24_hours_and_is_reported(world) -> None:
    client, runs, _ = world
    body = _get(client, "/api/v1/metrics/summary", {})
    assert (body["from_ms"], body["to_ms"]) == ((FIXED_NOW_NS - DAY) // MS, FIXED_NOW_NS // MS)
    assert body["requested"] == {"from": "2025-12-31T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    assert body["rows"][0]["runs"] == sum(FIXED_NOW_NS - DAY <= r.start_ns < FIXED_NOW_NS for r in runs)


def test_unaligned_windows_widen_to_whole_minutes_and_say_so(world) -> None:
    client, _, _ = world
    body = _get(client, "/api/v1/metrics/summary", {"from": str(FROM_NS // MS), "to": str(TO_NS // MS)})
    assert body["from"] == "2025-12-29T00:07:00Z" and body["to"] == "2025-12-31T01:11:00Z"
    assert body["requested"] == {"from": "2025-12-29T00:07:30.250000000Z", "to": "2025-12-31T01:10:10Z"}
    assert "from=1766966820000" in body["rows"][0]["runs_url"]


def test_a_query_on_two_tags_reads_tag_sets_by_hour_and_day_and_minutes_only_at_the_edges(world) -> None:
    # The ``full`` cube (about one minute cell per run) served every bucket of a two-tag query;
    # the ``tags`` cube (whole tag sets, no tools) serves its hours and days (migration 0018). The
    # numbers are the raw runs' (test_summary_rows_match_the_raw_runs_for_every_filter).
    client, runs, _ = world
    window = {"from": str(FROM_NS // MS), "to": str(TO_NS // MS)}
    for extra in ({"tag.env": "staging", "tag.tier": "pro"}, {"tag.env": "prod", "group_by": "tag.tier"}):
        body = _get(client, "/api/v1/metrics/summary", {**window, **extra})
        assert body["source"] == [
            {"cube": "tags", "tier_seconds": 86400, "buckets": 1},
            {"cube": "tags", "tier_seconds": 3600, "buckets": 24},
            {"cube": "full", "tier_seconds": 60, "buckets": 53 + 11},
        ], extra
    body = _get(client, "/api/v1/metrics/summary", {**window, "tag.env": "prod", "tool": "fetch"})
    assert [s["cube"] for s in body["source"]] == ["full"]  # tools are not in a tag set


def test_step_answers_widen_to_whole_quarters_or_hours_and_say_so(world) -> None:
    # Step facts are kept per quarter (core) and per hour (full): finer would be a cell per step.
    client, _, _ = world
    window = {"from": str(FROM_NS // MS), "to": str(TO_NS // MS)}
    body = _get(client, "/api/v1/metrics/summary", {**window, "kind": "tool"})
    assert (body["from"], body["to"]) == ("2025-12-29T00:00:00Z", "2025-12-31T01:15:00Z")
    body = _get(client, "/api/v1/metrics/summary", {**window, "kind": "tool", "tag.env": "prod"})
    assert (body["from"], body["to"]) == ("2025-12-29T00:00:00Z", "2025-12-31T02:00:00Z")
    assert "from=1766966400000" in body["rows"][0]["runs_url"]


@pytest.mark.parametrize(
    ("params", "step_seconds"),
    [({"kind": "llm"}, 900), ({"kind": "llm", "tag.env": "prod"}, 3600), ({}, 60)],
    ids=["a step kind: quarters", "a step kind with a tag: hours", "runs: minutes"],
)
def test_a_timeseries_auto_step_is_a_multiple_of_the_query_resolution(world, params, step_seconds) -> None:
    client, _, _ = world
    body = _get(client, "/api/v1/metrics/timeseries", {"from": "now-1h", **params})
    assert body["step_seconds"] == step_seconds


@pytest.mark.parametrize(
    ("params", "minutes"),
    [({"kind": "tool", "step": "5m"}, "15"), ({"kind": "tool", "tag.env": "prod", "step": "30m"}, "60")],
    ids=["5 minutes on steps", "30 minutes on steps of a tag"],
)
def test_a_step_finer_than_the_query_resolution_is_refused(client, params, minutes: str) -> None:
    r = client.get(f"/api/v1/metrics/timeseries?{urlencode(params)}")
    assert r.status_code == 400
    body = r.get_json()
    assert body["field"] == "step" and f"{minutes} minutes" in body["error"]


def test_metrics_are_read_from_rollups_only_never_from_raw_events(world) -> None:
    from hypermindlabs.rollups.answers import summary, timeseries
    from hypermindlabs.web.params import parse_metrics_query

    _, _, store = world
    statements: list[str] = []

    def capture(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        base = {"from": [str(FROM_NS // MS)], "to": [str(TO_NS // MS)]}
        for extra in ({}, {"group_by": ["tool,tag.env"]}, {"kind": ["tool"], "tag.env": ["prod"]}):
            summary(store, parse_metrics_query(base | extra, now_ns=FIXED_NOW_NS, timeseries=False))
            timeseries(store, parse_metrics_query(base | extra, now_ns=FIXED_NOW_NS, timeseries=True))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    assert statements
    assert not [s for s in statements if re.search(r"\b(events|run_tags)\b", s)]


@pytest.mark.parametrize(
    ("params", "group_by"),
    [({}, ["error_class"]), ({"tag.env": "prod"}, ["model", "error_class"]), ({"status": "error"}, ["tag.tier"]),
     ({"kind": "tool"}, ["tool", "error_class"])],
    ids=["by error class", "one tag, by model and error class", "failed runs by tag", "tool steps by tool and class"],
)  # fmt: skip
def test_a_timeseries_points_drill_down_is_the_summary_rows_of_its_step(
    world, params: dict[str, str], group_by: list[str]
) -> None:
    # The points' runs_url are built from one encoding per series (a speed-up): the same strings and
    # exactness flags as a summary of the point's step window gives its group's row.
    client, _, _ = world
    q = {**params, "group_by": ",".join(group_by), "from": str(FROM_NS // MS), "to": str(TO_NS // MS), "step": "6h"}
    body = _get(client, "/api/v1/metrics/timeseries", q)
    step_ms = body["step_seconds"] * 1000
    checked = 0
    for s in body["series"]:
        key = tuple(s["group"][g] for g in group_by)
        for p in s["points"][:: max(1, len(s["points"]) // 4)]:
            window = {"from": str(p["t"]), "to": str(p["t"] + step_ms)}
            rows = _get(client, "/api/v1/metrics/summary", {**params, "group_by": q["group_by"], **window})
            row = next((r for r in rows["rows"] if tuple(r["group"][g] for g in group_by) == key), None)
            if row is None:
                assert p["count"] == 0
                continue
            assert (p["runs_url"], p["runs_url_exact"]) == (row["runs_url"], row["runs_url_exact"]), (key, p["t"])
            checked += 1
    assert checked >= 4
