"""Bad or oversized query input answers a 4xx naming the parameter, never a 500 or a hung read.

Each case here was found by probing the running API (issue #7, build item 7), on both backends.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from hypermindlabs.config import ConfigError, Settings
from hypermindlabs.web import create_app
from tests.conftest import FIXED_NOW_NS

T0 = FIXED_NOW_NS - 3600 * 10**9
MS = 10**6
GET_ENDPOINTS = ("/api/v1/runs", "/api/v1/metrics/summary", "/api/v1/metrics/timeseries", "/api/v1/failures/clusters")
# The documented defaults (docs/api.md, Settings): tag filters per query, values per filter
# parameter, points (series x steps) per timeseries answer.
MAX_TAG_FILTERS, MAX_FILTER_VALUES, MAX_POINTS = 20, 100, 10_000


def run(i: int, **over: Any) -> dict[str, Any]:
    ev = {"run_id": f"r{i}", "kind": "run", "start_time": T0 + i * 10**9, "duration_ms": 120,
          "project": "support", "scenario": "refund", "model": "gpt-4o", "tags": {"env": "prod"}}  # fmt: skip
    ev.update(over)
    return ev


def post(client, payload: Any) -> None:
    r = client.post("/api/v1/events", data=orjson.dumps(payload), content_type="application/json")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]


def app_with(pipeline, **settings: Any):
    return create_app(Settings(database_url="unused", **settings), pipeline=pipeline, clock=lambda: FIXED_NOW_NS)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# -- NUL bytes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", GET_ENDPOINTS)
def test_a_nul_byte_in_a_query_parameter_answers_400_naming_it(client, endpoint: str) -> None:
    for param in ("project", "model", "tool", "scenario", "tag.env", "from", "status", "a\x00b"):
        r = client.get(endpoint, query_string={param: "a\x00b"})
        assert r.status_code == 400, (param, r.status_code, r.get_data(as_text=True)[:300])
        body = r.get_json()
        assert body["field"] == param and "NUL" in body["error"], (param, body)


@pytest.mark.parametrize("path", ["/api/v1/runs/a%00b", "/api/v1/runs/%00", "/api/v1/ru%00ns", "/runs/a%00"])
def test_a_nul_byte_in_the_path_answers_400_or_404(client, path: str) -> None:
    client.post("/api/v1/events", json=[run(1)])
    r = client.get(path)
    assert r.status_code in (400, 404), r.get_data(as_text=True)[:300]
    assert r.is_json


# -- how many filters ------------------------------------------------------------------------------
def tag_query(n: int) -> str:
    return "&".join(f"tag.k{i}=v" for i in range(n))


@pytest.mark.parametrize("endpoint", GET_ENDPOINTS)
def test_more_tag_filters_than_the_limit_answer_400_naming_the_limit(client, endpoint: str) -> None:
    limit = MAX_TAG_FILTERS
    assert client.get(f"{endpoint}?{tag_query(limit)}").status_code == 200
    for n in (limit + 1, 200):
        started = time.monotonic()
        r = client.get(f"{endpoint}?{tag_query(n)}")
        assert r.status_code == 400, (n, r.status_code)
        body = r.get_json()
        assert body["field"] == f"tag.k{limit}" and f"at most {limit} tag filters" in body["error"]
        assert time.monotonic() - started < 2.0
    assert Settings().query_max_tag_filters == limit


@pytest.mark.parametrize("endpoint", GET_ENDPOINTS)
def test_more_filter_values_than_the_limit_answer_400_naming_the_limit(client, endpoint: str) -> None:
    limit = MAX_FILTER_VALUES
    values = ",".join(f"m{i}" for i in range(limit))
    assert client.get(endpoint, query_string={"model": values}).status_code == 200
    # Over SQLite's 32766 bound parameters, unchecked, this was a 500.
    r = client.get(endpoint, query_string={"project": "p", "model": ",".join(f"m{i}" for i in range(40_000))})
    assert r.status_code == 400
    body = r.get_json()
    assert body["field"] == "model" and f"at most {limit} values" in body["error"]
    assert Settings().query_max_filter_values == limit


# -- times, steps, cursors: no overflow ------------------------------------------------------------
OUT_OF_RANGE_TIMES = {
    "now-100000000d": "now-100000000d", "now-30000d (before 2000)": "now-30000d",
    "now minus 30 digits of weeks": "now-" + "9" * 30 + "w", "now minus 5000 digits": "now-" + "9" * 5000 + "d",
    "a 40-digit epoch": "9" * 40, "a 5000-digit epoch": "9" * 5000, "epoch 1": "1", "epoch 0": "0",
    "2100 in epoch ms": "4102444800000", "2100 in RFC 3339": "2100-01-01T00:00:00Z",
    "1999 in RFC 3339": "1999-12-31T23:59:59Z",
}  # fmt: skip


@pytest.mark.parametrize("param", ["from", "to"])
@pytest.mark.parametrize("endpoint", GET_ENDPOINTS)
def test_times_outside_2000_to_2100_answer_400_naming_the_parameter(client, endpoint: str, param: str) -> None:
    for name, value in OUT_OF_RANGE_TIMES.items():
        r = client.get(endpoint, query_string={param: value})
        assert r.status_code == 400, (name, r.status_code, r.get_data(as_text=True)[:200])
        assert r.get_json()["field"] == param, name


@pytest.mark.parametrize(
    "value",
    ["1796140800000", "99999999999999999999m", "9" * 5000, "367d", "53w", "60s" + "0" * 30],
    ids=["1796140800000 seconds", "99999999999999999999m", "a 5000-digit step", "367 days", "53 weeks",
         "sixty followed by 30 zeros"],
)  # fmt: skip
def test_steps_that_would_overflow_answer_400_naming_step(client, value: str) -> None:
    r = client.get("/api/v1/metrics/timeseries", query_string={"step": value, "from": "now-1000d"})
    assert r.status_code == 400, (r.status_code, r.get_data(as_text=True)[:200])
    assert r.get_json()["field"] == "step"


@pytest.mark.parametrize(
    "cursor",
    [b64("9" * 25 + ":1"), b64("1767225600000000000:" + "9" * 25), b64("9" * 5000 + ":1"), b64("-1:-1"),
     b64("１７６７２２５６００００００００００００:１"), b64("1767225600000000000:1:2"), b64("1e18:1")],
    ids=["a 25-digit time", "a 25-digit sequence", "a 5000-digit time", "negative numbers", "fullwidth digits",
         "three parts", "an exponent"],
)  # fmt: skip
def test_a_cursor_holding_huge_or_odd_numbers_answers_400_naming_cursor(client, cursor: str) -> None:
    r = client.get("/api/v1/runs", query_string={"cursor": cursor})
    assert r.status_code == 400, (r.status_code, r.get_data(as_text=True)[:200])
    assert r.get_json()["field"] == "cursor"


@pytest.mark.parametrize(
    ("endpoint", "param", "value"),
    [("/api/v1/runs", "limit", "１０"), ("/api/v1/metrics/summary", "limit", "٣"),
     ("/api/v1/runs", "from", str(T0 // MS).translate(str.maketrans("0123456789", "０１２３４５６７８９"))),
     ("/api/v1/runs", "from", "now-６h"), ("/api/v1/metrics/timeseries", "step", "５m"),
     ("/api/v1/failures/clusters", "buckets", "１"), ("/api/v1/failures/clusters", "samples", "２"),
     ("/api/v1/runs", "from", "２０２５-12-31T23:00:00Z"), ("/api/v1/runs", "from", "2025-12-31T23:59:60Z"),
     ("/api/v1/runs", "limit", "1_0"), ("/api/v1/runs", "from", "1.7e12")],
    ids=["fullwidth limit", "Arabic-Indic limit", "fullwidth epoch ms", "fullwidth relative time", "fullwidth step",
         "fullwidth buckets", "fullwidth samples", "fullwidth RFC 3339", "a :60 second", "an underscore in limit",
         "an exponent epoch"],
)  # fmt: skip
def test_query_numbers_and_times_are_parsed_strictly(client, endpoint: str, param: str, value: str) -> None:
    r = client.get(endpoint, query_string={param: value})
    assert r.status_code == 400, (r.status_code, r.get_data(as_text=True)[:200])
    assert r.get_json()["field"] == param


def test_query_times_still_take_epoch_ms_rfc3339_and_relative_forms(client) -> None:
    post(client, [run(1), run(2)])
    forms = [{"from": str(T0 // MS), "to": str((T0 + 2 * 10**9) // MS)},
             {"from": "2025-12-31T23:00:00Z", "to": "2025-12-31T23:00:02Z"},
             {"from": "now-3600s", "to": "now - 3598 s"}]  # fmt: skip
    for q in forms:
        r = client.get("/api/v1/runs", query_string=q)
        assert r.status_code == 200, (q, r.get_data(as_text=True)[:200])
        assert [x["run_id"] for x in r.get_json()["runs"]] == ["r1"], q


# -- answer size -----------------------------------------------------------------------------------
def test_a_timeseries_over_the_point_budget_answers_400_saying_how_to_narrow_it(pipeline) -> None:
    client = app_with(pipeline).test_client()
    post(client, [run(i, model=f"m{i:02d}") for i in range(30)])
    budget = MAX_POINTS
    per_series = 24 * 60  # step 1m over the default 24 hours
    assert 30 * per_series > budget
    r = client.get("/api/v1/metrics/timeseries", query_string={"group_by": "model", "step": "1m"})
    assert r.status_code == 400, r.status_code
    body = r.get_json()
    assert body["field"] == "limit"
    assert all(word in body["error"] for word in (str(budget), "limit", "step", "from", "filter"))
    fits = budget // per_series
    ok = client.get("/api/v1/metrics/timeseries", query_string={"group_by": "model", "step": "1m", "limit": fits})
    assert ok.status_code == 200
    assert len(ok.get_json()["series"]) == fits and ok.get_json()["truncated"] is True
    assert Settings().query_max_points == budget


# -- statement timeout -----------------------------------------------------------------------------
_FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def test_every_read_connection_is_cut_at_the_statement_timeout(pipeline) -> None:
    from sqlalchemy import text

    from hypermindlabs.store import EventStore, ReadTimeout

    store = EventStore(pipeline.store.engine, read_timeout_ms=300)
    started = time.monotonic()
    with pytest.raises(ReadTimeout), store.read() as conn:
        conn.execute(text(_FOREVER)).scalar()
    assert time.monotonic() - started < 0.3 + 3.0
    with store.read() as conn:  # the connection goes back to the pool usable
        assert conn.execute(text("SELECT 1")).scalar() == 1
    # Writes are not reads: an append runs without the read timeout.
    post(app_with(pipeline).test_client(), [run(1)])


# PostgreSQL only: SQLite's deadline is a progress handler, no statement.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgresql_sets_the_read_timeout_once_per_transaction_not_per_statement(
    make_pipeline, backend, monkeypatch
) -> None:
    # Each SET LOCAL is a server round trip; a 24 h summary is seven statements of 0.2 ms each.
    from sqlalchemy import text

    from hypermindlabs.store import EventStore, dialect

    store = EventStore(make_pipeline().store.engine, read_timeout_ms=60_000)
    q = text("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'")  # ms
    with store.read() as conn:
        with conn.begin():
            monkeypatch.setattr(dialect, "_PG_RESET_AFTER_S", 60.0)  # (50 ms: a loaded machine's sleep may pass it)
            first = conn.execute(q).scalar()
            time.sleep(0.02)
            again = conn.execute(q).scalar()  # kept (it was set 20 ms ago: 20 ms less is left now)
            monkeypatch.setattr(dialect, "_PG_RESET_AFTER_S", 0.0)
            time.sleep(0.02)
            later = conn.execute(q).scalar()  # past the keep window: set afresh to what is left
        with conn.begin():
            fresh = conn.execute(q).scalar()  # SET LOCAL ended with the transaction: set again
    assert 0 < first <= 60_000 and again == first
    assert later <= first - 40 and 0 < fresh <= later
    with store.engine.connect() as conn:  # outside a read deadline: the server's default
        assert conn.execute(q).scalar() == 0


def test_a_read_past_the_statement_timeout_answers_503_quickly_and_the_server_stays_up(pipeline) -> None:
    client = app_with(pipeline, query_max_tag_filters=64, query_timeout_ms=20).test_client()
    tags = {f"k{j}": "v" for j in range(60)}
    for start in range(0, 2000, 500):
        post(client, [run(i, tags=tags) for i in range(start, start + 500)])
    started = time.monotonic()
    r = client.get(f"/api/v1/runs?limit=1000&{tag_query(60)}")
    elapsed = time.monotonic() - started
    assert r.status_code == 503, r.status_code
    assert "HYPERMIND_QUERY_TIMEOUT_MS" in r.get_json()["error"]
    assert elapsed < 0.02 + 3.0
    # The cancelled statement left nothing running: the same database answers at once.
    assert app_with(pipeline).test_client().get("/healthz").status_code == 200


# -- auth and headers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "status"),
    [("Bearer s3cret", 200), ("bearer s3cret", 200), ("BEARER s3cret", 200), ("bEaReR s3cret", 200),
     ("Bearer  s3cret", 200), ("Bearer wrong", 401), ("Basic s3cret", 401), ("s3cret", 401), ("Bearer", 401),
     ("Bearers3cret", 401), ("", 401)],
    ids=["Bearer", "bearer", "BEARER", "bEaReR", "two spaces", "a wrong token", "another scheme", "no scheme",
         "no token", "no space", "empty"],
)  # fmt: skip
def test_the_bearer_scheme_is_case_insensitive(pipeline, header: str, status: int) -> None:
    c = app_with(pipeline, api_token="s3cret").test_client()
    r = c.get("/api/v1/runs", headers={"Authorization": header} if header else {})
    assert r.status_code == status


@pytest.mark.parametrize("token", [" ", "   ", "\t", " \n "], ids=["a space", "spaces", "a tab", "a newline"])
def test_a_blank_api_token_is_a_configuration_error(token: str) -> None:
    with pytest.raises(ConfigError, match="HYPERMIND_API_TOKEN"):
        Settings.from_env({"HYPERMIND_API_TOKEN": token, "HYPERMIND_HOST": "0.0.0.0"})
    with pytest.raises(ConfigError, match="HYPERMIND_API_TOKEN"):
        Settings(api_token=token)


def test_serve_refuses_to_bind_beyond_loopback_with_a_whitespace_token(tmp_path) -> None:
    exe = Path(sys.executable).with_name("hypermind-obs")
    env = {**os.environ, "HYPERMIND_API_TOKEN": "   ", "HYPERMIND_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    try:
        done = subprocess.run([str(exe), "serve", "--host", "0.0.0.0", "--port", "0"], env=env,  # noqa: S104
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("serve bound 0.0.0.0 with a whitespace token")
    assert done.returncode == 2
    assert "HYPERMIND_API_TOKEN" in done.stderr


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/v1/runs", 200), ("GET", "/api/v1/runs?limit=0", 400), ("GET", "/api/v1/runs/nope", 404),
     ("GET", "/api/v1/nothing", 404), ("POST", "/api/v1/events", 400), ("GET", "/healthz", 200),
     ("GET", "/api/v1/metrics/summary", 200), ("GET", "/api/v1/failures/clusters", 200)],
)  # fmt: skip
def test_json_answers_carry_nosniff(client, method: str, path: str, status: int) -> None:
    r = client.open(path, method=method, data=b"{" if method == "POST" else None, content_type="application/json")
    assert r.status_code == status and r.is_json
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
