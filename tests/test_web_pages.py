"""The web UI's server side on both backends: pages, CSP, vendored chart files, the UI's small endpoints."""

from __future__ import annotations

import orjson
import pytest

from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from tests.conftest import FIXED_NOW_NS, require
from tests.web_ui_harness import REPO

T0 = FIXED_NOW_NS - 3600 * 10**9
PAGES = ["/observability", "/runs", "/runs?model=gpt-4o&from=now-6h", "/runs/r%2F1", "/failures/clusters/abc123"]


def _post(client, events):
    r = client.post("/api/v1/events", data=orjson.dumps(events), content_type="application/json")
    assert r.status_code == 200, r.get_json()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_html_under_a_csp_allowing_only_this_origin(client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.mimetype == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "object-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "frame-src" not in csp
    html = r.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html and " on" + "click=" not in html
    assert b"<iframe" not in r.data


def test_the_root_leads_to_the_dashboard(client) -> None:
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/observability")


def test_the_run_page_prints_its_id_escaped(client) -> None:
    html = client.get("/runs/%3Cscript%3Ex%3C%2Fscript%3E").get_data(as_text=True)
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_a_grafana_url_adds_frame_src_for_its_origin_and_the_panel_list(pipeline) -> None:
    app = create_app(Settings(database_url="unused", grafana_url="https://grafana.example.com/g/"), pipeline=pipeline,
                     clock=lambda: FIXED_NOW_NS)  # fmt: skip
    r = app.test_client().get("/observability")
    assert "frame-src https://grafana.example.com;" in r.headers["Content-Security-Policy"] + ";"
    html = r.get_data(as_text=True)
    assert 'data-grafana-url="https://grafana.example.com/g"' in html and "hypermind-overview" in html


def test_a_grafana_url_that_is_not_http_is_ignored(pipeline) -> None:
    app = create_app(Settings(database_url="unused", grafana_url="javascript:alert(1)"), pipeline=pipeline,
                     clock=lambda: FIXED_NOW_NS)  # fmt: skip
    r = app.test_client().get("/observability")
    assert "frame-src" not in r.headers["Content-Security-Policy"] and b"grafana-panel" not in r.data


def test_only_the_listed_chart_files_are_served_from_node_modules(client) -> None:
    require((REPO / "node_modules" / "uplot" / "dist" / "uPlot.iife.min.js").exists(), "npm packages (make bootstrap)")
    js = client.get("/vendor/uplot/uPlot.iife.min.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript" and b"uPlot" in js.data
    assert client.get("/vendor/uplot/uPlot.min.css").status_code == 200
    for bad in ("/vendor/uplot/package.json", "/vendor/uplot/../uplot/dist/uPlot.esm.js", "/vendor/axe-core/axe.js"):
        assert client.get(bad).status_code == 404, bad


def test_dimensions_lists_every_value_seen_and_tags_by_key(client) -> None:
    _post(client, [
        {"run_id": "a", "kind": "run", "start_time": T0, "duration_ms": 5, "project": "p1", "model": "m1",
         "scenario": "s1", "tags": {"env": "prod", "tier": "pro"}},
        {"run_id": "b", "kind": "run", "start_time": T0 + 10**9, "duration_ms": 5, "project": "p2", "model": "<m2>",
         "scenario": "s1", "tags": {"env": "staging"}},
        {"run_id": "b", "kind": "tool", "start_time": T0 + 10**9, "duration_ms": 1, "tool": "web_search"},
    ])  # fmt: skip
    d = client.get("/api/v1/dimensions").get_json()
    assert d["project"] == ["p1", "p2"] and d["model"] == ["<m2>", "m1"] and d["scenario"] == ["s1"]
    assert d["tool"] == ["web_search"]
    assert d["tags"] == {"env": ["prod", "staging"], "tier": ["pro"]} and d["truncated"] == []


def test_dimensions_cut_each_dimension_and_tag_key_at_the_limit_and_say_which(client, app) -> None:
    _post(client, [
        {"run_id": f"r{i}", "kind": "run", "start_time": T0 + i * 10**9, "duration_ms": 5, "project": f"p{i}",
         "model": "m", "scenario": f"s{i % 2}", "tags": {"env": f"e{i}", "tier": "pro"}}
        for i in range(3)
    ] + [{"run_id": "r0", "kind": "tool", "start_time": T0 + 1, "duration_ms": 1, "tool": t} for t in ("b", "a", "c")])
    d = app.extensions["hypermind.store"].dimension_values(limit=2)
    assert d["project"] == ["p0", "p1"] and d["model"] == ["m"] and d["scenario"] == ["s0", "s1"]
    assert d["tool"] == ["a", "b"] and d["tags"] == {"env": ["e0", "e1"], "tier": ["pro"]}
    assert d["truncated"] == ["project", "tool", "tag.env"]


def test_run_failures_gives_class_cluster_and_hint_for_each_failed_event(client) -> None:
    _post(client, [
        {"run_id": "f", "kind": "run", "start_time": T0, "duration_ms": 40_000, "status": "error",
         "error": {"type": "ReadTimeout", "message": "Read timed out. (read timeout=30)"}},
        {"run_id": "f", "kind": "tool", "start_time": T0, "duration_ms": 30_000, "tool": "crm_update", "status": "error",
         "error": {"type": "ReadTimeout", "message": "Read timed out. (read timeout=30)"}},
        {"run_id": "f", "kind": "llm", "start_time": T0, "duration_ms": 100, "model": "gpt-4o"},
    ])  # fmt: skip
    ans = client.get("/api/v1/failures/runs/f").get_json()
    trace = client.get("/api/v1/runs/f").get_json()
    failed = {e["event_id"]: e for e in trace["events"] if e["status"] == "error"}
    assert {f["event_id"] for f in ans["failed"]} == set(failed)
    for f in ans["failed"]:
        assert f["failure_class"] == "tool_timeout" and f["hint"]
        assert f["cluster_id"] == failed[f["event_id"]]["cluster_id"]
    assert client.get("/api/v1/failures/runs/nope").status_code == 404
