"""Rate limits (issue #15 item 2): per token and per client address on ingestion and on the
expensive reads, 429 with ``Retry-After`` and a JSON error naming the limit; shared by the workers
of ``hypermind-obs serve --workers 2`` through a real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from hypermindlabs.config import ConfigError, Settings
from hypermindlabs.web import create_app
from hypermindlabs.web.ratelimit import INGEST_ROUTES, READ_ROUTES
from tests.conftest import require

T = "2026-01-01T00:00:0{}Z"


def _event(i: int) -> dict:
    return {"kind": "run", "run_id": f"rl-{i}", "project": "p", "status": "ok",
            "start_time": T.format(0), "end_time": T.format(1)}  # fmt: skip


def _client(pipeline, **overrides):
    overrides.setdefault("rate_limits", "on")
    settings = Settings(database_url="unused", **overrides)
    return create_app(settings, pipeline=pipeline).test_client()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_429(r, *, limit: str, scope: str, per: str, window_s: int) -> int:
    assert r.status_code == 429, r.get_data(as_text=True)[:300]
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= window_s
    body = r.get_json()
    assert body["field"] == "rate_limit" and body["limit"] == limit
    assert (body["scope"], body["per"], body["retry_after_s"]) == (scope, per, retry)
    assert limit in body["error"] and f"{scope} per {per}" in body["error"]
    return retry


def test_ingest_over_the_per_address_limit_answers_429_with_retry_after_and_stores_nothing_of_it(pipeline, store):
    c = _client(pipeline, rate_limit_ingest_per_address="3/minute")
    for i in range(3):
        assert c.post("/api/v1/events", json=[_event(i)]).status_code == 200
    r = c.post("/api/v1/events", json=[_event(3)])
    _assert_429(r, limit="3 per 1 minute", scope="ingest", per="address", window_s=60)
    assert store.count_events() == 3  # the refused batch is not stored
    # OTLP shares the ingest budget and answers in its own encoding (google.rpc.Status, RESOURCE_EXHAUSTED = 8)
    otlp = c.post("/v1/traces", json={"resourceSpans": []})
    assert otlp.status_code == 429 and int(otlp.headers["Retry-After"]) >= 1
    assert otlp.get_json()["code"] == 8
    proto = c.post("/v1/traces", data=b"", content_type="application/x-protobuf")
    assert proto.status_code == 429 and proto.mimetype == "application/x-protobuf"
    from google.rpc import status_pb2

    assert status_pb2.Status.FromString(proto.get_data()).code == 8
    # a different address has its own budget
    other = c.post("/api/v1/events", json=[_event(9)], environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert other.status_code == 200


def test_an_expensive_read_over_the_limit_answers_429_and_the_read_routes_share_one_budget(pipeline):
    c = _client(pipeline, rate_limit_read_per_address="4/minute")
    assert c.get("/api/v1/runs").status_code == 200
    assert c.get("/api/v1/metrics/summary").status_code == 200
    assert c.get("/api/v1/metrics/timeseries").status_code == 200
    assert c.get("/api/v1/failures/clusters").status_code == 200
    _assert_429(c.get("/api/v1/regressions"), limit="4 per 1 minute", scope="read", per="address", window_s=60)
    _assert_429(c.get("/api/v1/metrics/summary"), limit="4 per 1 minute", scope="read", per="address", window_s=60)
    # cheap reads, the scrape, health and pages are not limited
    for path in ("/api/v1/runs/nope", "/api/v1/dimensions", "/api/v1/openapi.json", "/metrics", "/healthz", "/runs"):
        assert c.get(path).status_code in (200, 404), path
    # ingestion has its own budget
    assert c.post("/api/v1/events", json=[_event(1)]).status_code == 200


def test_each_token_has_its_own_budget(pipeline):
    c = _client(pipeline, admin_token="adm", read_token="rd", ingest_token="ing",
                rate_limit_read_per_token="2/minute", rate_limit_read_per_address="off",
                rate_limit_ingest_per_token="1/minute", rate_limit_ingest_per_address="off")  # fmt: skip
    assert [c.get("/api/v1/runs", headers=_bearer("rd")).status_code for _ in range(2)] == [200, 200]
    _assert_429(c.get("/api/v1/runs", headers=_bearer("rd")), limit="2 per 1 minute", scope="read", per="token",
                window_s=60)  # fmt: skip
    # the admin token, from the same address, still reads; then it too runs out
    assert [c.get("/api/v1/runs", headers=_bearer("adm")).status_code for _ in range(3)] == [200, 200, 429]
    # a refused token is refused before it counts (401, not 429), and costs nobody's budget
    assert c.get("/api/v1/runs", headers=_bearer("wrong")).status_code == 401
    assert c.post("/api/v1/events", json=[_event(1)], headers=_bearer("ing")).status_code == 200
    _assert_429(c.post("/api/v1/events", json=[_event(2)], headers=_bearer("ing")), limit="1 per 1 minute",
                scope="ingest", per="token", window_s=60)  # fmt: skip
    assert c.post("/api/v1/events", json=[_event(3)], headers=_bearer("adm")).status_code == 200


def test_after_retry_after_seconds_the_request_is_accepted_again(pipeline):
    c = _client(pipeline, rate_limit_ingest_per_address="2/second")
    codes = [c.post("/api/v1/events", json=[_event(i)]).status_code for i in range(3)]
    if codes != [200, 200, 429]:  # the first two straddled a second boundary: once more, inside one window
        codes = [c.post("/api/v1/events", json=[_event(10 + i)]).status_code for i in range(3)]
    assert codes[-1] == 429, codes
    r = c.post("/api/v1/events", json=[_event(20)])
    retry = int(r.headers["Retry-After"])
    time.sleep(retry)
    assert c.post("/api/v1/events", json=[_event(21)]).status_code == 200


def test_limits_are_validated_at_start_up_and_off_switches_them_off(pipeline):
    with pytest.raises(ConfigError, match="HYPERMIND_RATE_LIMIT_READ_PER_TOKEN"):
        Settings(rate_limit_read_per_token="lots")
    with pytest.raises(ConfigError, match="HYPERMIND_RATE_LIMIT_INGEST_PER_ADDRESS"):
        Settings.from_env({"HYPERMIND_RATE_LIMIT_INGEST_PER_ADDRESS": "0/second"})
    off = {f"rate_limit_{g}_per_{p}": "off" for g in ("ingest", "read") for p in ("token", "address")}
    c = _client(pipeline, **off)
    assert all(c.get("/api/v1/runs").status_code == 200 for _ in range(60))


def test_by_default_the_limits_apply_once_a_token_is_set_and_not_on_a_loopback_app_without_one(pipeline):
    """``HYPERMIND_RATE_LIMITS=auto``: a tokenless app may only bind to loopback, where every client
    is this machine (a test suite, the demo, a local agent); once a token is set the app may be
    exposed, and the limits hold."""
    assert Settings().rate_limits == "auto"
    tight = {"rate_limits": "auto", "rate_limit_read_per_address": "3/minute"}
    bare = _client(pipeline, **tight)
    assert all(bare.get("/api/v1/runs").status_code == 200 for _ in range(10))
    guarded = _client(pipeline, read_token="rd", **tight)
    codes = [guarded.get("/api/v1/runs", headers=_bearer("rd")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    with pytest.raises(ConfigError, match="HYPERMIND_RATE_LIMITS"):
        Settings(rate_limits="sometimes")


def test_the_openapi_document_describes_429_exactly_on_the_limited_routes(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    with_429 = {(m.upper(), p) for p, ops in doc["paths"].items() for m, op in ops.items() if "429" in op["responses"]}
    assert with_429 == set(INGEST_ROUTES | READ_ROUTES)
    for method, path in with_429:
        assert "Retry-After" in doc["paths"][path][method.lower()]["responses"]["429"]["headers"]


# -- two gunicorn workers, one Redis ------------------------------------------------------------
CLI = [sys.executable, "-m", "hypermindlabs.cli.main"]
REDIS_URL = os.environ.get("HYPERMIND_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis():
    try:
        import redis
    except ImportError:
        require(False, "the redis client (a dependency)")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError:
        require(False, f"Redis at {REDIS_URL}")
    return client


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, i: int) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/events", data=json.dumps([_event(i)]).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=20) as r:  # noqa: S310 - loopback test server
            return r.status
    except urllib.error.HTTPError as exc:
        assert exc.code != 429 or int(exc.headers["Retry-After"]) >= 1
        return exc.code


def _workers(master: int) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if len(kids) == 2:
            return [int(k) for k in kids]
        time.sleep(0.3)
    raise AssertionError(f"gunicorn did not start 2 workers: {kids}")


@pytest.mark.parametrize("storage", ["redis", "memory"])
def test_two_gunicorn_workers_share_the_limit_through_redis(storage, tmp_path):
    """Worker A alone answers 4 POSTs (B stopped), then worker B alone answers 6 (A stopped), under a
    limit of 6 a minute. Through Redis, B sees A's 4 and accepts only 2; with ``memory://`` (the
    contrast, so the test can tell) B counts on its own and accepts all 6."""
    rds = _redis() if storage == "redis" else None
    prefix = f"hm-test-{uuid.uuid4().hex[:10]}"
    port = _free_port()
    env = {**os.environ, "HYPERMIND_DATABASE_URL": f"sqlite:///{tmp_path / 'events.db'}",
           "HYPERMIND_RATE_LIMIT_STORAGE": REDIS_URL if storage == "redis" else "memory://",
           "HYPERMIND_RATE_LIMIT_KEY_PREFIX": prefix, "HYPERMIND_RATE_LIMIT_INGEST_PER_ADDRESS": "6/minute", "HYPERMIND_RATE_LIMITS": "on"}  # fmt: skip
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([*CLI, "serve", "--workers", "2", "--port", str(port)], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    stopped: list[int] = []
    try:
        a, b = _workers(proc.pid)
        deadline = time.monotonic() + 60
        while True:  # both workers booted (each answers once it has built its app)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:  # noqa: S310
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        time.sleep(2)  # the second worker's app too
        # Each POST opens a new connection; only the running worker can accept it.
        os.kill(b, signal.SIGSTOP)
        stopped.append(b)
        first = [_post(port, i) for i in range(4)]
        os.kill(b, signal.SIGCONT)
        stopped.remove(b)
        os.kill(a, signal.SIGSTOP)
        stopped.append(a)
        second = [_post(port, 10 + i) for i in range(6)]
        os.kill(a, signal.SIGCONT)
        stopped.remove(a)
        assert first == [200] * 4, log.read_text()[-2000:]
        if storage == "redis":
            assert second == [200, 200, 429, 429, 429, 429]
        else:
            assert second == [200] * 6  # each worker its own count: why serve --workers N needs Redis
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if rds is not None:
            for key in rds.scan_iter(f"{prefix}*"):
                rds.delete(key)
