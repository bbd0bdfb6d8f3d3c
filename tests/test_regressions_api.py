"""``GET /api/v1/regressions`` and ``hypermind-obs regressions`` on a real store: the demo's
injected regression, drill-downs that list exactly the runs behind each number, the daily-rhythm
baseline, bad parameters, and the sums of squares behind the mean tests."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from hypermindlabs.config import Settings
from hypermindlabs.core.events import format_timestamp
from hypermindlabs.web import create_app
from tests.conftest import FIXED_NOW_NS, open_pipeline

DEMO_END = datetime(2026, 3, 4, 18, 0, tzinfo=UTC)  # a Wednesday, on the hour
HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Any:
    """Eight days of the demo workload (the 24 h current window and the 7 days before it)."""
    from hypermindlabs.demo.load import load_demo

    pipeline = open_pipeline(f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}")
    result = load_demo(pipeline.store, seed=7, days=8, runs_per_day=1500, end=DEMO_END, progress=False)
    assert not result.rejected
    now_ns = int(DEMO_END.timestamp()) * 10**9
    app = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: now_ns)
    yield app.test_client(), pipeline.store
    pipeline.close()


def _all_run_ids(client, url: str) -> list[str]:
    ids: list[str] = []
    page = url + "&limit=1000"
    while True:
        body = client.get(page).get_json()
        ids += [r["run_id"] for r in body["runs"]]
        if not body.get("next_cursor"):
            return ids
        page = url + f"&limit=1000&cursor={body['next_cursor']}"


def test_the_demo_regression_is_the_first_finding_with_release_2_4_0_in_its_attribution(demo):
    client, _ = demo
    body = client.get("/api/v1/regressions").get_json()
    assert "baseline" in body, body
    assert body["baseline"] == "previous" and body["tests"] > 100
    assert body["to_ms"] == int(DEMO_END.timestamp() * 1000)
    assert body["baseline_to_ms"] == body["from_ms"] and body["from_ms"] - body["baseline_from_ms"] == 7 * 86_400_000
    first = body["findings"][0]
    assert first["slice"] == {"model": "gpt-4o-mini", "scenario": "refund_request"}
    assert first["metric"] == "failure_rate"
    assert first["current_value"] > 0.2 > 0.12 > first["baseline_value"]
    assert first["q_value"] < 1e-3 and first["test"] == "fisher_exact"
    tags = [(a["key"], a["value"]) for a in first["attribution"] if a["kind"] == "tag"]
    assert ("release", "2.4.0") in tags
    # its marginals are folded under it, not listed beside it
    folded = {(tuple(sorted(g["slice"].items())), g["metric"]) for g in first["folded"]}
    assert ((("model", "gpt-4o-mini"),), "failure_rate") in folded
    for f in body["findings"][1:]:
        assert f["slice"] not in ({"model": "gpt-4o-mini"}, {"scenario": "refund_request"})


def test_the_crm_update_timeout_burst_does_not_show_as_a_model_regression(demo):
    client, _ = demo
    body = client.get("/api/v1/regressions").get_json()
    # It shows as a surging failure cluster: triage's busiest cluster of the current window, with
    # more failed runs in it than twice its daily average over the baseline week (the burst recurs
    # on the last days only) …
    def clusters(a: str, b: str) -> list[dict]:
        return client.get("/api/v1/failures/clusters", query_string={"from": a, "to": b}).get_json()["clusters"]

    top = clusters(body["from"], body["to"])[0]
    assert top["failure_class"] == "tool_timeout" and "crm_update" in top["label"], top["label"]
    before = {c["cluster_id"]: c["failed_runs"] for c in clusters(body["baseline_from"], body["baseline_to"])}
    assert top["failed_runs"] > 2 * before.get(top["cluster_id"], 0) / 7, (top["failed_runs"], before)
    # … which the regression view names: the tool's finding is a transient burst attributed to it.
    [tool] = [f for f in body["findings"] if f["slice"] == {"tool": "crm_update"}]
    assert tool["transient"] and top["cluster_id"] in {a["value"] for a in tool["attribution"] if a["kind"] == "cluster"}
    crm = [f for f in body["findings"] if f["slice"].get("tool") == "crm_update"]
    # the burst shows on the tool (alone or within a scenario using it), not on a model
    assert any(f["slice"] == {"tool": "crm_update"} for f in crm)
    for f in body["findings"]:
        if f["slice"].get("tool") == "crm_update" and not f["transient"]:
            assert "model" not in f["slice"], f
        if "model" in f["slice"] and f["slice"].get("model") != "gpt-4o-mini":
            # any other model slice is the burst at most, marked as transient, below the regression
            assert f["transient"] or f["metric"] not in ("failure_rate", "failure_class_share"), f


def test_every_finding_links_exactly_the_runs_behind_its_numbers(demo):
    client, _ = demo
    body = client.get("/api/v1/regressions").get_json()
    checked = 0
    for f in body["findings"][:3]:
        for g in [f, *f["folded"][:4]]:
            cur = _all_run_ids(client, g["runs_url"])
            base = _all_run_ids(client, g["baseline_runs_url"])
            if g["metric"] in ("failure_rate", "failure_class_share"):
                assert len(cur) == g["current_count"] and len(base) == g["baseline_count"]
                assert g["current_count"] == round(g["current_value"] * g["current_n"])
            else:
                assert len(cur) == g["current_n"] and len(base) == g["baseline_n"]
            q = parse_qs(urlsplit(g["runs_url"]).query)
            assert q["from"] == [str(body["from_ms"])] and q["to"] == [str(body["to_ms"])]
            checked += 1
    assert checked >= 3


def test_the_command_prints_a_table_and_the_same_answer_as_json(demo, capsys):
    from hypermindlabs.cli import regressions as cli_regressions

    _, store = demo
    url = str(store.engine.url)
    # the CLI reads the clock: point its window at the demo's end
    args = ["regressions", "--database-url", url, "--from", str(int((DEMO_END.timestamp() - 86400) * 1000)),
            "--to", str(int(DEMO_END.timestamp() * 1000))]
    from hypermindlabs.cli import main

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "scenario=refund_request × model=gpt-4o-mini" in out.splitlines()[2]
    assert "release=2.4.0" in out
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["findings"][0]["slice"] == {"model": "gpt-4o-mini", "scenario": "refund_request"}
    # untrusted text never reaches the terminal raw
    fake = {**report, "findings": [{**report["findings"][0], "slice": {"model": "evil\x1b[2J\x07"}}]}
    rendered = cli_regressions.render(fake)
    assert "\x1b" not in rendered and "\x07" not in rendered and "evil?[2J?" in rendered


# -- a daily rhythm: same-hours baseline ---------------------------------------------------------
def _rhythm_events(now_ns: int, days: int = 8, per_hour_peak: int = 100) -> list[dict]:
    """Healthy traffic with a strong daily rhythm: busy hours (09–17 UTC) carry 3x the runs, are
    2.5 times as slow and fail fifteen times as often, every day alike."""
    rng = random.Random(42)
    out = []
    start = now_ns - days * DAY_NS
    for h in range(days * 24):
        t0 = start + h * HOUR_NS
        busy = 9 <= (t0 // HOUR_NS) % 24 < 17
        for i in range(per_hour_peak if busy else per_hour_peak * 3 // 10):
            begin = t0 + rng.randrange(HOUR_NS)
            fail = rng.random() < (0.15 if busy else 0.01)
            dur = rng.lognormvariate(7.0 + (0.9 if busy else 0.0), 0.4)
            ev = {"run_id": f"r-{h}-{i}", "kind": "run", "project": "p", "model": rng.choice(["m1", "m2"]),
                  "scenario": rng.choice(["s1", "s2", "s3"]), "start_time": format_timestamp(begin),
                  "duration_ms": round(dur, 3), "status": "error" if fail else "ok",
                  "usage": {"input_tokens": rng.randrange(500, 1500), "output_tokens": rng.randrange(50, 300)}}
            if fail:
                ev["error"] = {"type": "TimeoutError", "message": "upstream timed out", "class": "tool_timeout"}
            out.append(ev)
    return out


def test_a_daily_rhythm_with_a_peak_hours_window_yields_nothing_with_the_same_hours_baseline(pipeline):
    from hypermindlabs.ingest.bodies import ingest_objects

    now_ns = FIXED_NOW_NS - FIXED_NOW_NS % DAY_NS  # midnight
    result = ingest_objects(pipeline.store, _rhythm_events(now_ns))
    assert not result.rejected
    client = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: now_ns).test_client()
    window = f"from={(now_ns - 15 * HOUR_NS) // 10**6}&to={(now_ns - 7 * HOUR_NS) // 10**6}"  # 09:00–17:00
    previous = client.get(f"/api/v1/regressions?{window}").get_json()
    same = client.get(f"/api/v1/regressions?{window}&baseline=same-hours").get_json()
    # against the whole previous week the busy hours look like a regression; against the same hours
    # of the previous days they are what they always are
    assert any(f["slice"] == {} or len(f["slice"]) == 1 for f in previous["findings"])
    assert same["findings"] == [] and same["tests"] > 10
    assert len(same["baseline_windows"]) == 7
    for w in same["baseline_windows"]:
        assert (w["from_ms"] * 10**6 // HOUR_NS) % 24 == 9 and (w["to_ms"] - w["from_ms"]) == 8 * 3600 * 1000


def test_same_hours_baseline_urls_list_exactly_the_baseline_runs(pipeline):
    from hypermindlabs.ingest.bodies import ingest_objects

    now_ns = FIXED_NOW_NS - FIXED_NOW_NS % DAY_NS
    events = _rhythm_events(now_ns)
    # a regression in the current peak window: every m1 × s1 run fails
    for ev in events:
        if ev["start_time"] >= format_timestamp(now_ns - 15 * HOUR_NS) and ev["model"] == "m1" and ev["scenario"] == "s1":
            ev["status"] = "error"
            ev["error"] = {"type": "ValueError", "message": "bad args", "class": "tool_schema_mismatch"}
    ingest_objects(pipeline.store, events)
    client = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: now_ns).test_client()
    window = f"from={(now_ns - 15 * HOUR_NS) // 10**6}&to={(now_ns - 7 * HOUR_NS) // 10**6}"
    body = client.get(f"/api/v1/regressions?{window}&baseline=same-hours").get_json()
    first = body["findings"][0]
    assert first["slice"] == {"model": "m1", "scenario": "s1"} and first["metric"] == "failure_rate"
    base = [rid for u in first["baseline_runs_urls"] for rid in _all_run_ids(client, u)]
    assert len(base) == len(set(base)) == first["baseline_count"]
    assert len(_all_run_ids(client, first["runs_url"])) == first["current_count"]


# -- parameters ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("baseline=weekly", "baseline"),
        ("metrics=failure_rate,latency", "metrics"),
        ("dimensions=model,color", "dimensions"),
        ("dimensions=tag.b%20d", "dimensions"),
        ("min_runs=0", "min_runs"),
        ("min_runs=ten", "min_runs"),
        ("alpha=2", "alpha"),
        ("status=error", "status"),
        ("from=yesterday", "from"),
        ("baseline_to=now", "baseline_to"),
        ("baseline_from=now-1h&baseline_to=now-2h", "baseline_from"),
        ("colour=red", "colour"),
    ],
)
def test_bad_parameters_get_a_400_naming_the_field(client, query, field):
    r = client.get(f"/api/v1/regressions?{query}")
    assert r.status_code == 400
    assert r.get_json()["field"] == field and r.get_json()["error"]


def test_an_empty_store_answers_with_no_findings_and_the_effective_windows(client):
    body = client.get("/api/v1/regressions?from=now-6h&min_runs=50&metrics=failure_rate&dimensions=model").get_json()
    assert body["findings"] == [] and body["tests"] == 0
    assert body["to_ms"] - body["from_ms"] == 6 * 3600 * 1000
    assert body["params"]["min_runs"] == 50 and body["metrics"] == ["failure_rate"]
    assert body["dimensions"] == ["model"]


# -- the sums of squares behind the Welch tests --------------------------------------------------
def test_rollup_sums_of_squares_equal_a_recomputation_from_raw_events(store):
    from hypermindlabs.core.filters import Filters
    from hypermindlabs.ingest.bodies import ingest_objects
    from hypermindlabs.rollups.answers import grouped
    from hypermindlabs.rollups.facts import MEASURES
    from hypermindlabs.rollups.query import MetricsQuery

    rng = random.Random(9)
    t0 = FIXED_NOW_NS - DAY_NS
    events, expect_tok, expect_calls = [], 0, 0
    for i in range(60):
        start = t0 + i * 60 * 10**9
        calls = rng.randrange(0, 4)
        tokens = 0
        for c in range(calls):
            events.append({"run_id": f"q{i}", "kind": "tool", "tool": "t", "start_time": format_timestamp(start + c),
                           "duration_ms": 5, "status": "ok"})
        usage = {"input_tokens": rng.randrange(1, 900), "output_tokens": rng.randrange(1, 90)}
        tokens = usage["input_tokens"] + usage["output_tokens"]
        events.append({"run_id": f"q{i}", "kind": "run", "project": "p", "model": "m", "scenario": "s",
                       "start_time": format_timestamp(start), "duration_ms": 100, "status": "ok", "usage": usage})
        expect_tok += tokens * tokens
        expect_calls += calls * calls
    random.Random(1).shuffle(events)  # children before and after their runs
    ingest_objects(store, events)
    q = MetricsQuery(filters=Filters(), kinds=("run",), group_by=(), from_ns=t0, to_ns=FIXED_NOW_NS,
                     requested_from_ns=t0, requested_to_ns=FIXED_NOW_NS)
    aggs, _ = grouped(store, q, [(t0, FIXED_NOW_NS)])
    sums = dict(zip(MEASURES, (int(v) for v in aggs[()].sums), strict=True))
    assert sums["n"] == 60
    assert sums["tokens_sq"] == expect_tok and sums["tool_calls_sq"] == expect_calls


def test_filters_that_only_the_finest_cube_answers_still_get_an_analysis_not_a_500(demo):
    # A tag filter together with tool and several dimension filters is kept only in the minute-tier
    # cube; the analysis reads that tier instead of failing (it answered 500 before).
    client, _ = demo
    r = client.get(
        "/api/v1/regressions?project=acme-support&model=gpt-4o-mini&tool=order_lookup"
        "&scenario=order_status,refund_request&tag.env=prod"
    )
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    body = r.get_json()
    assert isinstance(body["findings"], list) and body["tests"] >= 0


# -- attribution from the tag cube ----------------------------------------------------------------
def _raw_facet_counts(runs: list[Any], sel: Any, windows: list[tuple[int, int]]) -> Counter:
    """What a selection's attribution counts, recounted from the raw run events."""
    from hypermindlabs.core.sketch import bin_of

    want: Counter = Counter()
    for r in runs:
        if not any(a <= r.start_ns < b for a, b in windows) or any(getattr(r, d) != v for d, v in sel.dims):
            continue
        if sel.above_bin is not None:
            if bin_of((r.end_ns - r.start_ns) / 1e6) <= sel.above_bin:
                continue
        elif r.status != "error" or (sel.failure_class not in (None, r.failure_class or "unknown")):
            continue
        for k, v in json.loads(r.tags).items():
            want["tag", k, str(v)] += 1
        if r.cluster_id is not None:
            want["cluster", "cluster", r.cluster_id] += 1
    return want


def test_attribution_counts_from_the_tag_cube_equal_a_recount_of_the_raw_runs(demo):
    # Tag values and clusters among a slice's failing runs (with a class, or all) and slow runs
    # (latency bin above a threshold), current and baseline, both baselines: read from the tag
    # cube, never from raw runs, and equal to the raw runs' counts.
    import sqlalchemy as sa

    from hypermindlabs.core.sketch import bin_of
    from hypermindlabs.store.regression_facets import Selection, facet_counts
    from hypermindlabs.store.schema import events
    from hypermindlabs.store.tag_sets import event_column
    from hypermindlabs.web import regressions as wr

    _, store = demo
    cols = [event_column(events, k) for k in ("project", "scenario", "model", "status", "failure_class",
                                              "cluster_id", "tags", "start_ns", "end_ns")]  # fmt: skip
    with store.engine.connect() as conn:
        runs = conn.execute(sa.select(*cols).where(events.c.kind == "run")).all()
    classes = Counter(r.failure_class for r in runs if r.status == "error")
    median_bin = sorted(bin_of((r.end_ns - r.start_ns) / 1e6) for r in runs)[len(runs) // 2]
    sels = [
        Selection((("model", "gpt-4o-mini"), ("scenario", "refund_request"))),
        Selection((("model", "gpt-4o-mini"),), failure_class=classes.most_common(1)[0][0]),
        Selection(()),
        Selection((("project", "acme-support"),), failed=False, above_bin=median_bin),
        Selection((("scenario", "refund_request"),), failed=False, above_bin=median_bin + 40),
    ]
    now_ns = int(DEMO_END.timestamp()) * 10**9
    checked = 0
    for args in ({}, {"from": ["now-8h"], "baseline": ["same-hours"]}):
        q = wr.parse_regressions_query(args, now_ns=now_ns)
        windows = [[(q.from_ns, q.to_ns)], list(q.baseline_windows)]
        with store.read() as conn:
            got = facet_counts(conn, sels, windows, filters=q.filters, tag_cube=wr._cube("tag"))
        for sel, per_window in zip(sels, got, strict=True):
            for w, group in enumerate(windows):
                want = _raw_facet_counts(runs, sel, group)
                assert per_window[w] == want, (sel, w)
                checked += sum(1 for k in want if k[0] == "cluster")
    assert checked > 10  # clusters were counted, not only tags


def test_the_findings_attribution_counts_equal_those_of_their_raw_runs(demo):
    # End to end: each attributed finding's counts and selection size as the raw runs have them —
    # slices of run dimensions read from the tag cube (the demo's first finding is one), tool
    # slices from their failing or slow runs through the indexes of migration 0016.
    import sqlalchemy as sa

    from hypermindlabs.core.sketch import bin_of
    from hypermindlabs.regressions import analyze
    from hypermindlabs.store.regression_facets import tag_cube_answers
    from hypermindlabs.store.schema import events
    from hypermindlabs.store.tag_sets import event_column
    from hypermindlabs.web import regressions as wr

    _, store = demo
    cols = [event_column(events, k) for k in ("run_id", "project", "scenario", "model", "status", "failure_class",
                                              "cluster_id", "tags", "start_ns", "end_ns")]  # fmt: skip
    with store.engine.connect() as conn:
        runs = conn.execute(sa.select(*cols).where(events.c.kind == "run")).all()
        tools: dict[str, set[str]] = {}
        for rid, tool in conn.execute(sa.select(events.c.run_id, events.c.tool).where(events.c.tool.is_not(None))):
            tools.setdefault(rid, set()).add(tool)
    q = wr.parse_regressions_query({}, now_ns=int(DEMO_END.timestamp()) * 10**9)
    sources, _ = wr.read_sources(store, q)
    analysis = analyze(sources, params=q.params, current_hours=24, metrics=q.metrics, dimensions=q.dimensions)
    bin_ids = analysis.bin_ids
    findings = analysis.findings[:10]
    got = wr.attribution_counts(store, q, findings, bin_ids)
    kinds = Counter()
    for f, g in zip(findings, got, strict=True):
        sel = wr._selection(f, bin_ids)
        if sel is None:
            assert g is None
            continue
        cubed = tag_cube_answers(q.filters, sel)
        member = [r for r in runs if sel.member is None or sel.member[1] in tools.get(r.run_id, set())]
        if cubed:
            want = (_raw_facet_counts(member, sel, [(q.from_ns, q.to_ns)]),
                    _raw_facet_counts(member, sel, list(q.baseline_windows)))  # fmt: skip
        else:  # the raw path selects slow runs by duration beyond the threshold bin's edge
            min_ns = int(wr._threshold_ms(f, bin_ids) * 1e6) if sel.above_bin is not None else None
            slow = [r for r in member if min_ns is None or r.end_ns - r.start_ns > min_ns]
            every_bin = -(2**40) if min_ns is not None else None  # slow runs: every status
            plain = wr.Selection(sel.dims, None, sel.failed, sel.failure_class, every_bin)
            want = (_raw_facet_counts(slow, plain, [(q.from_ns, q.to_ns)]),
                    _raw_facet_counts(slow, plain, list(q.baseline_windows)))  # fmt: skip
        cur, n_c, base = g.cur, g.n_c, g.base
        assert g.sample is None, f  # the demo's selections are below SAMPLE_RUNS: every run counted
        assert (cur, base) == want, f
        selected = [r for r in member if q.from_ns <= r.start_ns < q.to_ns and all(getattr(r, d) == v for d, v in sel.dims)]
        if sel.above_bin is None:
            selected = [r for r in selected if r.status == "error"
                        and sel.failure_class in (None, r.failure_class or "unknown")]  # fmt: skip
        elif cubed:
            selected = [r for r in selected if bin_of((r.end_ns - r.start_ns) / 1e6) > sel.above_bin]
        else:
            selected = [r for r in selected if r.end_ns - r.start_ns > min_ns]
        assert n_c == len(selected), f
        kinds["cube" if cubed else "runs"] += 1
    assert kinds["cube"] >= 1 and kinds["runs"] >= 1, kinds
    assert wr._selection(findings[0], bin_ids).member is None


def _member_runs(store: Any) -> tuple[list[Any], dict[str, set[str]]]:
    import sqlalchemy as sa

    from hypermindlabs.store.schema import events
    from hypermindlabs.store.tag_sets import event_column

    cols = [event_column(events, k) for k in ("seq", "run_id", "project", "scenario", "model", "status",
                                              "failure_class", "cluster_id", "tags", "start_ns", "end_ns")]  # fmt: skip
    with store.engine.connect() as conn:
        runs = conn.execute(sa.select(*cols).where(events.c.kind == "run")).all()
        tools: dict[str, set[str]] = {}
        for rid, tool in conn.execute(sa.select(events.c.run_id, events.c.tool).where(events.c.tool.is_not(None))):
            tools.setdefault(rid, set()).add(tool)
    return runs, tools


def _member_findings(store: Any) -> tuple[Any, list[Any], Any]:
    from hypermindlabs.regressions import analyze
    from hypermindlabs.store.regression_facets import tag_cube_answers
    from hypermindlabs.web import regressions as wr

    q = wr.parse_regressions_query({}, now_ns=int(DEMO_END.timestamp()) * 10**9)
    sources, _ = wr.read_sources(store, q)
    analysis = analyze(sources, params=q.params, current_hours=24, metrics=q.metrics, dimensions=q.dimensions)
    member = [f for f in analysis.findings[:10] if (s := wr._selection(f, analysis.bin_ids)) is not None
              and not tag_cube_answers(q.filters, s)]  # fmt: skip
    return q, member, analysis.bin_ids


def test_a_member_slices_sampled_attribution_counts_exactly_the_sampled_runs_and_states_its_margin(demo):
    # Beyond SAMPLE_RUNS selected runs a window, a member slice's attribution counts a
    # deterministic sample (the runs whose seq hash is below the threshold): the counts are
    # exactly those of the sampled runs, recounted here from the raw events, and the answer says
    # how many were counted of how many selected, with the 95 % margin of a share.
    import math

    from hypermindlabs.store.regression_facets import sample_hash, sample_keep
    from hypermindlabs.web import regressions as wr

    _, store = demo
    runs, tools = _member_runs(store)
    q, findings, bin_ids = _member_findings(store)
    assert findings, "the demo has tool findings"
    sampled = 0
    for f in findings:
        sel = wr._selection(f, bin_ids)
        threshold = wr._threshold_ms(f, bin_ids)
        min_ns = int(threshold * 1e6) if threshold is not None else None
        selected = wr._selected(f)
        target = max(selected) // 3  # below the larger window's selection: at least that one sampled
        got = wr._raw_counts(store, q, [f], bin_ids, sample_runs=target)[0]
        assert got.sample is not None, f
        for windows, total, counted, n, side in (
            ([(q.from_ns, q.to_ns)], selected[0], got.cur, got.n_c, "current"),
            (list(q.baseline_windows), selected[1], got.base, got.n_b, "baseline"),
        ):
            keep = sample_keep(total, target)
            chosen = [
                r for r in runs
                if sel.member[1] in tools.get(r.run_id, set()) and any(a <= r.start_ns < b for a, b in windows)
                and all(getattr(r, d) == v for d, v in sel.dims)
                and (r.status == "error" and sel.failure_class in (None, r.failure_class or "unknown")
                     if min_ns is None else r.end_ns - r.start_ns > min_ns)
                and (keep is None or sample_hash(r.seq) < keep)
            ]  # fmt: skip
            want: Counter = Counter()
            for r in chosen:
                for k, v in json.loads(r.tags).items():
                    want["tag", k, str(v)] += 1
                if r.cluster_id is not None:
                    want["cluster", "cluster", r.cluster_id] += 1
            assert (counted, n) == (want, len(chosen)), (f, side)
            stated = got.sample[side]
            assert stated == {"counted": n, "selected": total, "sampled": keep is not None}, (f, side)
            if keep is not None:
                assert 0 < n < total, (f, side)  # a sample, not all and not nothing
                sampled += 1
        margins = [1.96 * math.sqrt(0.25 / s["counted"] * (s["selected"] - s["counted"]) / (s["selected"] - 1))
                   for s in (got.sample["current"], got.sample["baseline"]) if s["sampled"]]  # fmt: skip
        assert got.sample["share_margin_95"] == pytest.approx(max(margins))
    assert sampled >= len(findings)


def test_the_answer_says_attribution_is_exact_when_every_selected_run_was_counted(demo):
    client, _ = demo
    body = client.get("/api/v1/regressions").get_json()
    assert body["findings"] and all(f["attribution_sample"] is None for f in body["findings"])


def test_a_member_slices_selection_reads_its_filters_from_the_covering_indexes(demo):
    # SQLite plans the failing and slow runs of a tool slice on migration 0017's indexes, which
    # hold the run dimensions and run_id (not a dimension's index or ix_runs_start, which read
    # every candidate's row).
    from sqlalchemy import event

    from hypermindlabs.web import regressions as wr

    _, store = demo
    q, findings, bin_ids = _member_findings(store)
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, params, context, executemany):
        if "INDEXED BY" in statement or "FROM events AS r" in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        wr._raw_counts(store, q, findings, bin_ids)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    plans = set()
    with store.engine.connect() as conn:
        for statement, params in seen:
            plan = " ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
            used = [ix for ix in ("ix_runs_failed_cover", "ix_runs_timed_cover") if f"SEARCH r USING INDEX {ix}" in plan]
            assert used, plan
            plans.add(used[0])
    assert plans == {"ix_runs_failed_cover", "ix_runs_timed_cover"}, plans


def test_the_tag_cube_is_searched_for_its_slices_once_per_answer_not_once_per_cells_statement(demo):
    # The selections' slices are found by one statement; the cells statements take their ids
    # (re-evaluating the slices' conditions in every cells statement was most of the cost of
    # each short bucket range).
    from sqlalchemy import event

    from hypermindlabs.store.regression_facets import Selection, facet_counts
    from hypermindlabs.web import regressions as wr

    _, store = demo
    q = wr.parse_regressions_query({}, now_ns=int(DEMO_END.timestamp()) * 10**9)
    sels = [Selection((("model", "gpt-4o-mini"),)), Selection((), failed=False, above_bin=0)]
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.read() as conn:
            got = facet_counts(conn, sels, [[(q.from_ns, q.to_ns)], list(q.baseline_windows)], filters=q.filters,
                               tag_cube=wr._cube("tag"))  # fmt: skip
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    cells = [s for s in seen if "FROM rollup_cells" in s]
    assert len(cells) >= 4 and all(got[i][0] for i in range(2))
    assert sum("rollup_slices" in s for s in seen) == 1 and not any("rollup_slices" in s for s in cells)


def test_member_findings_share_one_read_per_window_and_index_and_count_as_if_read_alone(demo):
    # Every member finding's failing runs come from one statement per window, and so do their
    # slow runs (the index range scanned once, not once per finding); each finding's counts are
    # those it gets read on its own.
    from sqlalchemy import event

    from hypermindlabs.web import regressions as wr

    _, store = demo
    import dataclasses

    q, found, bin_ids = _member_findings(store)
    # Each member finding and the same finding on another tool and on a model: several of a kind.
    findings = [*found]
    for f in found:
        dims = tuple((d, v) for d, v in f.slice if d != "tool")
        findings.append(dataclasses.replace(f, slice=(*dims, ("tool", "crm_lookup"))))
        findings.append(dataclasses.replace(f, slice=(("model", "gpt-4o"), ("tool", "send_email"))))
    kinds = {f.metric == "p95_latency_ms" for f in findings}
    assert len(found) >= len(kinds) == 2
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):
        if "FROM events AS r" in statement:
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        together = wr._raw_counts(store, q, findings, bin_ids)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert len(seen) == len(kinds) * (1 + len(q.baseline_windows)), seen
    alone = [wr._raw_counts(store, q, [f], bin_ids)[0] for f in findings]
    assert together == alone
    assert sum(1 for g in together if g.n_c and g.n_b) > len(found)  # not vacuous: a variant selected runs too
