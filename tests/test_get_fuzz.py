"""Every query parameter of every GET endpoint, driven with arbitrary text, on both databases.

The endpoints come from the app's URL map, so a new GET route is fuzzed without touching this
file; the parameter names are the ones each endpoint documents, the ones any endpoint takes, and
random ones. The property: the answer is 200, a redirect or a 4xx (JSON with an ``error`` under
``/api/``), never a 5xx, and every request ends within the read timeout (plus slack for a busy
machine): a read past it is cut by the database, not left running.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from tests.conftest import FIXED_NOW_NS

READ_TIMEOUT_MS = 2000
SLACK_S = 3.0
T0 = FIXED_NOW_NS - 6 * 3600 * 10**9

# Parameters each endpoint documents (docs/api.md, CONTRACTS.md). An endpoint not listed here
# (a new one) gets the common filters plus every parameter any endpoint takes.
FILTERS = ("project", "model", "tool", "scenario", "tag.env", "tag.release", "tag.a.b-c_d", "from", "to")
KNOWN_PARAMS: dict[str, tuple[str, ...]] = {
    "/api/v1/runs": (*FILTERS, "limit", "cursor", "status", "error_class", "cluster"),
    "/api/v1/metrics/summary": (*FILTERS, "group_by", "kind", "limit", "status", "error_class"),
    "/api/v1/metrics/timeseries": (*FILTERS, "group_by", "kind", "limit", "step", "status", "error_class"),
    "/api/v1/failures/clusters": (*FILTERS, "buckets", "samples"),
    "/api/v1/regressions": (*FILTERS, "baseline", "baseline_from", "baseline_to", "min_runs", "metrics",
                            "dimensions"),
    "/api/v1/alerts": ("state",),
    "/runs": (*FILTERS, "limit", "cursor", "status", "error_class", "cluster"),
}
ANY_PARAMS = tuple(sorted({p for names in KNOWN_PARAMS.values() for p in names}))


def params_of(rule: str) -> tuple[str, ...]:
    return KNOWN_PARAMS.get(rule, ANY_PARAMS)


def _cursor(a: int, b: int) -> str:
    return base64.urlsafe_b64encode(f"{a}:{b}".encode()).decode().rstrip("=")


# Near-valid values find more than uniform noise: they get past the first check into parsing,
# planning and SQL. Arbitrary text covers the rest (NUL, controls, bidi, fullwidth digits, …).
_SAMPLES = st.sampled_from(["now", "now-6h", "now-100000000d", "now-30000d", "now - 5 m", "1m", "5m", "1h", "1d", "7d",
                     "60", "0", "-1", "1796140800000", "99999999999999999999m", "run", "tool,llm", "ok", "error",
                     "model", "tag.env", "project,model,tool", "error_class", "kind", "support", "gpt-4o",
                     "prod", "tool_timeout", "previous", "same-hours", "firing", "all", "２０", "５m", "now-６h",
                     "2025-12-31T23:59:60Z", "2026-01-01T00:00:00Z", "2099-12-31T23:59:59Z", ",", ",,,", " "])
NEAR_VALID = st.one_of(
    _SAMPLES, _SAMPLES, _SAMPLES, _SAMPLES,
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=0, max_value=2**70).map(lambda n: str(n) + "ms"),
    st.builds(_cursor, st.integers(min_value=-(2**80), max_value=2**80), st.integers(min_value=-(2**80),
                                                                                       max_value=2**80)),
    st.from_regex(r"\Anow-[0-9]{1,25}(ms|s|m|h|d|w)\Z"),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})\Z"),
    st.lists(st.sampled_from(["a", "b", "support", "gpt-4o", "x" * 300]), max_size=8).map(",".join),
)  # fmt: skip
VALUES = st.one_of(NEAR_VALID, NEAR_VALID, NEAR_VALID, st.text(max_size=40), st.text(max_size=400))
RANDOM_NAMES = st.one_of(st.text(min_size=1, max_size=20), st.text(max_size=20).map(lambda s: "tag." + s))


def get_rules(app) -> list[str]:
    rules = sorted({r.rule for r in app.url_map.iter_rules() if "GET" in r.methods})
    assert "/api/v1/runs" in rules and "/api/v1/metrics/timeseries" in rules  # the map is what we think
    return rules


_VARIABLE = re.compile(r"<(?:([a-z]+):)?([A-Za-z_]+)>")


def build_path(rule: str, draw_text: Any) -> str:
    def fill(m: re.Match[str]) -> str:
        text = draw_text()
        if m.group(1) != "path":
            text = text.replace("/", "")
        return quote(text or "x", safe="")

    return _VARIABLE.sub(fill, rule)


@pytest.fixture
def fuzz_client(pipeline):
    """One app and store per backend, seeded with runs, steps, failures and tags; GETs only, so shared."""
    app = create_app(Settings(database_url="unused", query_timeout_ms=READ_TIMEOUT_MS), pipeline=pipeline,
                     clock=lambda: FIXED_NOW_NS)  # fmt: skip
    client = app.test_client()
    events: list[dict[str, Any]] = []
    for i in range(60):
        start = T0 + i * 5 * 60 * 10**9
        failed = i % 4 == 0
        events.append({"run_id": f"r{i}", "kind": "run", "start_time": start, "duration_ms": 100 + i,
                       "project": "support" if i % 2 else "sales", "scenario": "refund", "model": "gpt-4o",
                       "status": "error" if failed else "ok", "tags": {"env": "prod", "release": f"1.{i % 3}"},
                       **({"error": {"type": "ToolTimeout", "message": f"tool crm timed out after {i}s"}}
                          if failed else {})})  # fmt: skip
        events.append({"run_id": f"r{i}", "kind": "tool", "start_time": start + 10**6, "duration_ms": 20,
                       "tool": "crm", "status": "error" if failed else "ok",
                       **({"error": {"type": "Timeout", "message": "timed out"}} if failed else {})})  # fmt: skip
    r = client.post("/api/v1/events", data=orjson.dumps(events), content_type="application/json")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return client


def check(client, path: str, pairs: list[tuple[str, str]]) -> None:
    started = time.monotonic()
    r = client.get(path, query_string=pairs)
    elapsed = time.monotonic() - started
    where = f"GET {path} {pairs!r}"[:600]
    assert r.status_code == 200 or 300 <= r.status_code < 500, f"{r.status_code} for {where}"
    assert elapsed < READ_TIMEOUT_MS / 1000 + SLACK_S, f"{elapsed:.2f} s for {where}"
    if path.startswith("/api/") and r.status_code >= 400:
        body = r.get_json(silent=True)
        assert isinstance(body, dict) and body.get("error"), f"no JSON error for {where}"


def test_every_get_endpoint_survives_a_nul_and_garbage_in_every_known_parameter(fuzz_client) -> None:
    # Deterministic floor under the random search: every endpoint, every name it knows.
    for rule in get_rules(fuzz_client.application):
        path = build_path(rule, lambda: "r1")
        names = ANY_PARAMS
        for junk in ("a\x00b\u202e\x85\u2028", "９" * 30, "now-" + "9" * 5000 + "d"):
            for name in names:
                check(fuzz_client, path, [(name, junk)])
        check(fuzz_client, build_path(rule, lambda: "a\x00b"), [])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_arbitrary_query_parameters_never_answer_5xx_nor_outlive_the_read_timeout(fuzz_client, data) -> None:
    rules = get_rules(fuzz_client.application)
    # API routes drawn three times as often as pages, static files and /metrics.
    weighted = [r for r in rules for _ in range(3 if r.startswith("/api/") else 1)]
    rule = data.draw(st.sampled_from(weighted), label="rule")
    path = build_path(rule, lambda: data.draw(st.text(max_size=30), label="path text"))
    known = st.sampled_from(params_of(rule))
    names = st.one_of(known, known, known, known, known, known, known, RANDOM_NAMES)
    # Mostly known names (so parsing gets past "unknown parameter"), one in eight a random one.
    pairs = data.draw(st.lists(st.tuples(names, VALUES), max_size=4), label="query")
    check(fuzz_client, path, pairs)
