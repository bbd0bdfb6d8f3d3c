"""Scoped tokens, the scrape token, CORS off by default and the security headers on every answer."""

from __future__ import annotations

import pytest

from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from hypermindlabs.web.security import API_CSP, Scopes

EVENT = {
    "kind": "run",
    "run_id": "sec-1",
    "project": "p",
    "status": "ok",
    "start_time": "2026-01-01T00:00:00Z",
    "end_time": "2026-01-01T00:00:01Z",
}
ALERTS = {"version": "4", "status": "firing", "receiver": "r", "alerts": []}
SCOPED = {"ingest_token": "ing", "read_token": "rd", "admin_token": "adm", "metrics_token": "scrape"}


def _client(pipeline, **tokens):
    return create_app(Settings(database_url="unused", **tokens), pipeline=pipeline).test_client()


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _ingest(c, token):
    return c.post("/api/v1/events", json=[EVENT], headers=_bearer(token)).status_code


def _read(c, token):
    return c.get("/api/v1/runs", headers=_bearer(token)).status_code


def _scrape(c, token):
    return c.get("/metrics", headers=_bearer(token)).status_code


def test_the_ingest_token_writes_but_cannot_read_or_scrape(pipeline):
    c = _client(pipeline, **SCOPED)
    assert _ingest(c, "ing") == 200
    assert c.post("/v1/traces", json={"resourceSpans": []}, headers=_bearer("ing")).status_code == 200
    assert c.post("/api/v1/alerts", json=ALERTS, headers=_bearer("ing")).status_code == 200
    assert _read(c, "ing") == 401
    assert c.get("/api/v1/metrics/summary?project=p", headers=_bearer("ing")).status_code == 401
    assert _scrape(c, "ing") == 401


def test_the_read_token_reads_and_scrapes_but_cannot_write(pipeline, store):
    c = _client(pipeline, **SCOPED)
    assert _read(c, "rd") == 200
    assert c.get("/api/v1/alerts", headers=_bearer("rd")).status_code == 200
    assert _scrape(c, "rd") == 200
    assert _ingest(c, "rd") == 401
    assert c.post("/v1/traces", json={"resourceSpans": []}, headers=_bearer("rd")).status_code == 401
    assert store.count_events() == 0


def test_the_scrape_token_opens_metrics_and_nothing_else(pipeline):
    c = _client(pipeline, **SCOPED)
    assert _scrape(c, "scrape") == 200
    assert _read(c, "scrape") == 401
    assert _ingest(c, "scrape") == 401


def test_the_admin_token_and_the_legacy_api_token_are_accepted_in_every_scope(pipeline, store):
    scoped = _client(pipeline, **SCOPED)
    legacy = _client(pipeline, api_token="s3cret")
    for c, token in ((scoped, "adm"), (legacy, "s3cret")):
        assert _ingest(c, token) == 200
        assert _read(c, token) == 200
        assert _scrape(c, token) == 200
    assert _ingest(legacy, "ing") == 401 and _read(legacy, None) == 401 and _scrape(legacy, None) == 401
    assert store.count_events() == 1  # the same event twice: idempotent


def test_a_scope_without_its_own_token_is_closed_not_open_once_any_token_is_set(pipeline):
    c = _client(pipeline, ingest_token="ing")
    assert _ingest(c, "ing") == 200
    assert _read(c, None) == 401 and _read(c, "ing") == 401
    assert _scrape(c, None) == 401


def test_without_any_token_everything_is_open_and_metrics_needs_no_scrape_token(pipeline):
    c = _client(pipeline)
    assert _ingest(c, None) == 200 and _read(c, None) == 200 and _scrape(c, None) == 200


@pytest.mark.parametrize("header", ["bearer rd", "BEARER rd", "Bearer  rd ", "Bearer rd"])
def test_the_bearer_scheme_is_case_insensitive(pipeline, header):
    c = _client(pipeline, **SCOPED)
    assert c.get("/api/v1/runs", headers={"Authorization": header}).status_code == 200


@pytest.mark.parametrize("header", ["rd", "Basic rd", "Bearer", "Bearer rdx", "Bearer r", "Token rd"])
def test_wrong_schemes_and_near_miss_tokens_are_refused_with_a_field(pipeline, header):
    r = _client(pipeline, **SCOPED).get("/api/v1/runs", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.get_json()["field"] == "Authorization"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_pages_and_healthz_stay_open_when_tokens_are_set(pipeline):
    c = _client(pipeline, **SCOPED)
    assert c.get("/healthz").status_code == 200
    assert c.get("/runs").status_code == 200


def test_token_comparison_hashes_to_a_fixed_length_before_comparing():
    scopes = Scopes.from_settings(Settings(database_url="unused", **SCOPED))
    assert {len(d) for d in scopes.read} == {32}
    assert scopes.allows("read", "Bearer rd") and not scopes.allows("read", "Bearer " + "rd" * 1000)


def test_cors_is_off_by_default(pipeline):
    r = _client(pipeline).get("/api/v1/runs", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert not any(h.lower().startswith("access-control-") for h in r.headers.keys())
    pre = _client(pipeline).options(
        "/api/v1/events", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in pre.headers


def test_cors_answers_only_the_configured_origins(pipeline):
    c = _client(pipeline, cors_origins="https://ui.example, https://other.example")
    ok = c.get("/api/v1/runs", headers={"Origin": "https://ui.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    bad = c.get("/api/v1/runs", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in bad.headers
    pre = c.options(
        "/api/v1/events",
        headers={
            "Origin": "https://other.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert pre.headers["Access-Control-Allow-Origin"] == "https://other.example"
    assert "authorization" in pre.headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/runs", 200),
        ("GET", "/api/v1/runs?limit=nope", 400),
        ("GET", "/api/v1/nothing", 404),
        ("POST", "/api/v1/events", 400),
        ("GET", "/metrics", 200),
        ("GET", "/healthz", 200),
        ("GET", "/vendor/uplot/uPlot.min.css", 200),
        ("GET", "/vendor/nothing/x.js", 404),
    ],
)
def test_every_answer_carries_the_security_headers(pipeline, method, path, status):
    r = _client(pipeline).open(path, method=method, data=b"[{" if method == "POST" else None)
    assert r.status_code == status
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"
    csp = r.headers["Content-Security-Policy"]
    if r.mimetype == "text/html":  # the pages blueprint's own 404 page: the pages' policy
        assert "frame-ancestors 'self'" in csp and "script-src 'self'" in csp
    else:
        assert csp == API_CSP and "frame-ancestors 'none'" in csp


def test_a_401_carries_the_security_headers_too(pipeline):
    r = _client(pipeline, **SCOPED).get("/api/v1/runs")
    assert r.status_code == 401 and r.headers["Content-Security-Policy"] == API_CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_keep_their_own_policy_with_frame_ancestors(pipeline):
    r = _client(pipeline).get("/runs")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'self'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "same-origin"
