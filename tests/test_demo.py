"""The demo workload: deterministic, contract-shaped, and carrying the regression and burst it claims."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from hypermindlabs.demo import FAILURE_CLASSES, DemoSpec, demo_spec, generate_events

END = datetime(2024, 5, 15, 9, 30, tzinfo=UTC)  # a Wednesday
KINDS = {"run", "llm", "tool", "retrieval", "policy"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def to_ms(value: str | int | float) -> float:
    """Epoch ms from any time form the contract allows (unit inferred from magnitude)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp() * 1000
    for limit, per_ms in ((1e11, 1e-3), (1e14, 1.0), (1e17, 1e3)):
        if value < limit:
            return value / per_ms
    return value / 1e6


def span_ms(ev: dict) -> tuple[float, float]:
    start = to_ms(ev["start_time"])
    end = to_ms(ev["end_time"]) if "end_time" in ev else start + ev["duration_ms"]
    return start, end


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def error_rate(runs: list[dict]) -> float:
    return sum(r["status"] == "error" for r in runs) / len(runs)


@pytest.fixture(scope="module")
def spec() -> DemoSpec:
    return demo_spec(end=END)


@pytest.fixture(scope="module")
def events(spec: DemoSpec) -> list[dict]:
    """The full two weeks at the default volume: enough runs in the regressed slice to measure."""
    return list(generate_events(spec, runs_per_day=1500))


@pytest.fixture(scope="module")
def few_events() -> list[dict]:
    """Three days at a low volume, for the per-event checks."""
    return list(generate_events(demo_spec(end=END, days=3), runs_per_day=800))


@pytest.fixture(scope="module")
def runs(events: list[dict]) -> list[dict]:
    return [e for e in events if e["kind"] == "run"]


def test_same_seed_gives_byte_identical_events_and_another_seed_does_not():
    small = demo_spec(end=END, days=2)
    first = [json.dumps(e, sort_keys=True) for e in generate_events(small, runs_per_day=300)]
    again = [json.dumps(e, sort_keys=True) for e in generate_events(small, runs_per_day=300)]
    other = [
        json.dumps(e, sort_keys=True)
        for e in generate_events(demo_spec(seed=8, end=END, days=2), runs_per_day=300)
    ]
    assert first == again
    assert first != other
    assert len(first) > 1000


def test_spec_describes_the_window_releases_regression_and_burst(spec: DemoSpec):
    assert spec.end - spec.start == timedelta(days=14)
    assert 3 <= len(spec.projects) <= 4 and len(spec.models) == 6
    assert len(spec.tools) == 20 and len(spec.scenarios) == 10
    assert spec.releases[0][1] == spec.start
    assert [at for _, at in spec.releases] == sorted(at for _, at in spec.releases)
    assert spec.release_at(spec.regression_at) == spec.regression_release
    assert spec.release_at(spec.regression_at - timedelta(seconds=1)) != spec.regression_release
    assert spec.end - timedelta(hours=27) < spec.regression_at < spec.end - timedelta(hours=24)
    assert (spec.burst_start, spec.burst_end) == spec.burst_windows[0]
    assert len(spec.burst_windows) == 3
    assert all(spec.start <= s < e <= spec.end for s, e in spec.burst_windows)
    assert spec.burst_tool in spec.tools and spec.regression_tool in spec.tools
    assert spec.failure_classes == FAILURE_CLASSES


def test_bad_arguments_are_rejected_with_the_field_named():
    with pytest.raises(ValueError, match="end"):
        demo_spec(end=datetime(2024, 5, 15))
    with pytest.raises(ValueError, match="days"):
        demo_spec(end=END, days=0)
    with pytest.raises(ValueError, match="runs_per_day"):
        next(generate_events(demo_spec(end=END), runs_per_day=0))


def test_a_one_day_window_still_has_a_regression_and_a_burst():
    short = demo_spec(end=END, days=1)
    assert short.start < short.regression_at < short.end
    assert short.burst_windows and all(short.start <= s < e <= short.end for s, e in short.burst_windows)
    assert sum(e["kind"] == "run" for e in generate_events(short, runs_per_day=500)) > 300


def test_every_event_has_the_contract_fields_and_lies_inside_the_window(few_events):
    events, spec = few_events, demo_spec(end=END, days=3)
    lo, hi = spec.start.timestamp() * 1000, spec.end.timestamp() * 1000
    for ev in events:
        assert ev["kind"] in KINDS
        assert ev["run_id"].startswith("run-") and len(ev["run_id"]) == 28
        assert HEX32.match(ev["trace_id"]) and HEX16.match(ev["span_id"])
        assert ev["status"] in {"ok", "error"}
        assert ("error" in ev) == (ev["status"] == "error")
        if "error" in ev:
            assert set(ev["error"]) == {"type", "message"} and ev["error"]["message"]
        start, end = span_ms(ev)
        assert lo <= start <= end <= hi
        assert all(isinstance(v, str) for v in ev["tags"].values())
        if ev["kind"] == "tool":
            assert ev["tool"] in spec.tools
    assert json.loads(json.dumps(events)) == events


def test_each_run_lists_its_children_in_time_order_then_its_run_event(few_events):
    events = few_events
    by_run: dict[str, list[dict]] = defaultdict(list)
    order: list[str] = []
    for ev in events:
        if ev["run_id"] not in by_run:
            order.append(ev["run_id"])
        by_run[ev["run_id"]].append(ev)
    # one run event per run id, and a run's events are never interleaved with another run's
    assert len(order) == sum(e["kind"] == "run" for e in events)
    assert [e["run_id"] for e in events] == [rid for rid in order for _ in by_run[rid]]
    for rid in order:
        *children, run = by_run[rid]
        assert run["kind"] == "run" and "parent_span_id" not in run
        assert all(c["kind"] != "run" for c in children) and children
        assert all(
            c["parent_span_id"] == run["span_id"] and c["trace_id"] == run["trace_id"] for c in children
        )
        starts = [span_ms(c)[0] for c in children]
        assert starts == sorted(starts)
        assert span_ms(run)[0] <= starts[0] and span_ms(children[-1])[1] <= span_ms(run)[1]
        llm_usage = [c["usage"] for c in children if c["kind"] == "llm" and c["status"] == "ok"]
        for key in run["usage"]:
            assert run["usage"][key] == sum(u[key] for u in llm_usage)
        assert run["attributes"]["tool_calls"] == sum(c["kind"] == "tool" for c in children)
        if run["status"] == "error":
            assert run["error"] == children[-1]["error"]
            assert run["attributes"]["demo.failure_class"] == children[-1]["attributes"]["demo.failure_class"]


def test_the_parser_gets_every_time_form_and_missing_optional_fields(few_events):
    events = few_events
    forms = Counter(
        "rfc3339" if isinstance(v, str) else "epoch_s" if isinstance(v, float) else f"int_{len(str(v))}"
        for v in (e["start_time"] for e in events)
    )
    assert {"rfc3339", "epoch_s", "int_13", "int_16", "int_19"} <= set(forms)
    assert all(v.endswith("Z") for v in (e["start_time"] for e in events) if isinstance(v, str))
    assert any("duration_ms" in e and "end_time" not in e for e in events)
    assert 0.02 < sum("event_id" not in e for e in events) / len(events) < 0.2
    children = [e for e in events if e["kind"] != "run"]
    assert any("project" not in e and "scenario" not in e for e in children)
    assert any(e["kind"] == "llm" and "model" not in e for e in events)
    llm_usage = [e["usage"] for e in events if e["kind"] == "llm" and "usage" in e]
    assert 0.03 < sum("input_chars" in u for u in llm_usage) / len(llm_usage) < 0.3
    ids = [e["event_id"] for e in events if "event_id" in e]
    assert len(ids) == len(set(ids))


def test_every_failure_class_appears_worded_as_real_libraries_word_it(events):
    classes = Counter(e["attributes"]["demo.failure_class"] for e in events if e["status"] == "error")
    assert set(classes) == set(FAILURE_CLASSES)
    messages = "\n".join(e["error"]["message"] for e in events if e["status"] == "error")
    for needle in (
        "is a required property",
        "Field required [type=missing",
        "Expecting ',' delimiter: line 1 column",
        "HTTPSConnectionPool(host='api.crm.example.com', port=443): Read timed out. (read timeout=30)",
        "'code': 'rate_limit_exceeded'",
        "'code': 'context_length_exceeded'",
        "'code': 'invalid_api_key'",
        "'type': 'overloaded_error'",
        "502 Bad Gateway",
        "'code': 'content_filter'",
        "Retriever returned 0 documents",
    ):
        assert needle in messages, needle
    # numbers and ids vary inside one wording, so clustering has something to normalize
    errors = [e["error"]["message"] for e in events if e["status"] == "error"]
    assert len({m for m in errors if "rate_limit_exceeded" in m}) > 20


def test_the_regression_slice_degrades_after_the_bad_release_while_the_total_stays_near_flat(runs, spec):
    at = spec.regression_at.timestamp() * 1000

    def in_slice(r: dict) -> bool:
        return r["model"] == spec.regression_model and r["scenario"] == spec.regression_scenario

    def outside_bursts(r: dict) -> bool:
        start = span_ms(r)[0]
        return not any(s.timestamp() * 1000 <= start < e.timestamp() * 1000 for s, e in spec.burst_windows)

    before = [r for r in runs if span_ms(r)[0] < at]
    after = [r for r in runs if span_ms(r)[0] >= at]
    assert all(r["tags"]["release"] == spec.regression_release for r in after)
    assert all(r["tags"]["release"] != spec.regression_release for r in before)

    slice_before, slice_after = [r for r in before if in_slice(r)], [r for r in after if in_slice(r)]
    assert 0.03 < len(slice_before) / len(before) < 0.07
    assert len(slice_after) > 50
    assert error_rate(slice_after) > 2.5 * error_rate(slice_before)
    assert error_rate(slice_after) - error_rate(slice_before) > 0.12
    assert p95([span_ms(r)[1] - span_ms(r)[0] for r in slice_after]) > 1.6 * p95(
        [span_ms(r)[1] - span_ms(r)[0] for r in slice_before]
    )

    calm_before = [r for r in before if outside_bursts(r)]
    calm_after = [r for r in after if outside_bursts(r)]
    # the slice is ~5% of traffic: the total moves by about one point, its p95 barely
    assert abs(error_rate(calm_after) - error_rate(calm_before)) < 0.02
    assert (
        0.85
        < p95([span_ms(r)[1] - span_ms(r)[0] for r in after])
        / p95([span_ms(r)[1] - span_ms(r)[0] for r in before])
        < 1.2
    )
    others_after = [r for r in calm_after if not in_slice(r)]
    others_before = [r for r in calm_before if not in_slice(r)]
    assert abs(error_rate(others_after) - error_rate(others_before)) < 0.015

    def tokens_per_run(sample: list[dict]) -> float:
        with_tokens = [r["usage"]["input_tokens"] for r in sample if "input_tokens" in r["usage"]]
        return sum(with_tokens) / len(with_tokens)

    assert tokens_per_run(slice_after) > 1.2 * tokens_per_run(slice_before)
    regression_errors = Counter(
        r["attributes"]["demo.failure_class"] for r in slice_after if r["status"] == "error"
    )
    assert regression_errors.most_common(1)[0][0] == spec.regression_failure_class


def test_the_burst_tool_times_out_during_each_burst_window(events, spec):
    calls = [e for e in events if e["kind"] == "tool" and e["tool"] == spec.burst_tool]
    windows = [(s.timestamp() * 1000, e.timestamp() * 1000) for s, e in spec.burst_windows]

    def timeout_rate(sample: list[dict]) -> float:
        return sum(e.get("attributes", {}).get("demo.failure_class") == "tool_timeout" for e in sample) / len(
            sample
        )

    outside = [e for e in calls if not any(s <= span_ms(e)[0] < t for s, t in windows)]
    assert timeout_rate(outside) < 0.02
    for s, t in windows:
        inside = [e for e in calls if s <= span_ms(e)[0] < t]
        assert len(inside) > 30
        assert timeout_rate(inside) > 0.4


def test_traffic_follows_a_daily_and_weekly_rhythm(runs, spec):
    per_day = Counter(datetime.fromtimestamp(span_ms(r)[0] / 1000, UTC).date() for r in runs)
    full_days = [d for d in per_day if spec.start.date() < d < spec.end.date()]
    assert len(full_days) == 13
    mean = sum(per_day[d] for d in full_days) / len(full_days)
    assert 1300 < mean < 1700
    weekdays = [per_day[d] for d in full_days if d.weekday() < 5]
    weekends = [per_day[d] for d in full_days if d.weekday() >= 5]
    assert max(weekends) < 0.6 * min(weekdays)
    hours = Counter(datetime.fromtimestamp(span_ms(r)[0] / 1000, UTC).hour for r in runs)
    assert sum(hours[h] for h in range(10, 16)) > 4 * sum(hours[h] for h in range(1, 7))


def test_latencies_are_long_tailed(events):
    llm = sorted(span_ms(e)[1] - span_ms(e)[0] for e in events if e["kind"] == "llm" and e["status"] == "ok")
    median, p99 = llm[len(llm) // 2], llm[int(0.99 * len(llm))]
    assert 500 < median < 5000
    assert p99 > 3 * median
