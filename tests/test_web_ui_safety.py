"""The web UI in a real Chromium: hostile text stays text, accessibility (axe-core), Grafana embedding.

Hostile values go through the real ingest path into a real store; the pages must show them as
text and run nothing: no dialog, no global set by injected script, no CSP violation, no console
error, no injected element and no ``javascript:`` link.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from hypermindlabs import conventions
from hypermindlabs.config import Settings
from hypermindlabs.ingest import ingest_objects
from hypermindlabs.wiring import build_pipeline
from tests.conftest import require
from tests.web_ui_harness import NOW_MS, REPO, Server, new_watched, screenshot, start_server
from tests.web_ui_stand_ins import seed_alert

pytestmark = pytest.mark.browser

MODEL = "<script>window.__xss='model'</script>"
TOOL = '"><img src=x onerror="window.__xss=\'tool\'">'
SCENARIO = "javascript:window.__xss='scenario'"
PROJECT = "<img src=x onerror=alert('project')>"
TAG_VALUE = "<svg onload=alert('tag')>"
TAG_URL = "javascript:alert('tag-url')"
ERROR = "boom \"><img src=x onerror=alert('err')><script>window.__xss='error'</script> javascript:alert(1)"
RUN_ID = "run-<b>bold</b>\"'&"
HOSTILE = [MODEL, TOOL, SCENARIO, PROJECT, TAG_VALUE, ERROR]


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'hostile.db'}"
    pipeline = build_pipeline(Settings(database_url=url))
    store = pipeline.store
    now_ms = NOW_MS  # the pinned clock of the app and the browser (tests/web_ui_harness.py)
    events = []
    for i in range(6):
        rid = RUN_ID if i == 0 else f"{RUN_ID}-{i}"
        start = now_ms - 3600_000 + i * 60_000
        failed = i % 2 == 0
        events.append({
            "run_id": rid, "kind": "run", "start_time": start, "duration_ms": 900, "status": "error" if failed else "ok",
            "project": PROJECT, "model": MODEL, "scenario": SCENARIO, "tags": {"note": TAG_VALUE, "link": TAG_URL},
            "error": {"type": "<b>ToolError</b>", "message": ERROR} if failed else None,
            "attributes": {"html": "<iframe src=javascript:alert(1)>"},
        })  # fmt: skip
        events.append({
            "run_id": rid, "kind": "tool", "start_time": start + 100, "duration_ms": 300, "tool": TOOL, "name": TOOL,
            "status": "error" if failed else "ok",
            "error": {"type": "ValueError", "message": ERROR} if failed else None,
        })  # fmt: skip
    events = [{k: v for k, v in e.items() if v is not None} for e in events]
    result = ingest_objects(store, events)
    assert result.accepted == len(events) and not result.rejected, result.rejected
    pipeline.close()
    gen = start_server(url, tmp_path_factory)
    server = next(gen)
    seed_alert(server, alertname="HostileAlert", severity="page", summary_text=ERROR,
               runs_url="/api/v1/runs?status=error", runbook_url="javascript:alert('runbook')")  # fmt: skip
    yield server
    next(gen, None)


def assert_inert(p: Any) -> None:
    assert p.evaluate("window.__xss") is None
    assert p.evaluate("document.querySelectorAll('img, svg:not(.uplot svg), iframe, script:not([src])').length") == 0
    bad = p.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href).filter(h => !/^https?:/.test(h))")
    assert bad == []


def test_hostile_values_are_shown_as_text_and_run_nothing_on_every_page(hostile_server, page) -> None:
    base = hostile_server.url
    p = page.open(f"{base}/observability?from=now-6h")
    p.locator("#triage-panel").scroll_into_view_if_needed()  # it loads when near the viewport
    p.wait_for_selector("#clusters[data-state=ready]")
    p.wait_for_selector("#tools[data-state=ready]")  # the tool table above it, deferred too
    body = p.inner_text("body")
    assert ERROR in body  # the alert summary and the cluster label show the message as text
    assert p.eval_on_selector("#filter-model", "s => [...s.options].map(o => o.value)") == [MODEL]
    assert p.eval_on_selector("#filter-tool", "s => [...s.options].map(o => o.value)") == [TOOL]
    assert_inert(p)
    with p.expect_request(lambda r: "/api/v1/metrics/summary" in r.url and "model=" in r.url):
        p.select_option("#filter-model", [MODEL])
    p.wait_for_selector("#kpis[data-state=ready]")
    assert p.get_attribute("[data-testid=kpi-runs]", "data-value") == "6"
    for v in (MODEL, SCENARIO):
        assert v in p.inner_text("#by-dimension") or v in p.inner_text("#filters")
    assert_inert(p)

    with p.expect_navigation():
        p.click("[data-testid=kpi-runs]")
    page.wait_loaded()
    text = p.inner_text("#run-list")
    for v in (MODEL, SCENARIO, PROJECT, TAG_VALUE, TAG_URL, ERROR[:200]):
        assert v in text, v
    assert p.locator("[data-testid=run-row]").count() == 6
    assert_inert(p)

    p.goto(f"{base}/runs/{quote(RUN_ID, safe='')}")
    page.wait_loaded()
    assert p.inner_text("[data-testid=run-id]") == RUN_ID
    trace = p.inner_text("#trace")
    assert TOOL in trace and ERROR in trace
    assert p.locator("[data-testid=span-row]").count() == 2
    assert_inert(p)

    with p.expect_navigation():
        p.locator("[data-testid=span-cluster]").first.click()
    page.wait_loaded()
    # The failed run counts under its root cause, the failed tool step (issue #9), not its own error.
    assert p.inner_text("[data-testid=cluster-label]").startswith(f"tool_execution_error · {TOOL} · boom ")
    assert p.locator("[data-testid=sample-run]").count() >= 1
    assert_inert(p)


def _axe(p: Any) -> list[dict[str, Any]]:
    axe = REPO / "node_modules" / "axe-core" / "axe.min.js"
    require(axe.exists(), "axe-core from npm (make bootstrap)")
    p.add_script_tag(path=str(axe))
    result = p.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result if v["impact"] in ("serious", "critical")]  # fmt: skip


def test_axe_finds_no_serious_or_critical_violation_on_the_dashboard_run_list_and_run_page(
    demo_server, browser
) -> None:
    # axe is injected by the test as a script tag, which the page's own CSP would refuse (rightly):
    # this context bypasses CSP for that; the other tests run with it.
    for w in new_watched(browser, bypass_csp=True):
        p = w.open(f"{demo_server.url}/observability")
        p.wait_for_selector("#chart-latency[data-drawn]")
        p.locator("#triage-panel").scroll_into_view_if_needed()
        p.wait_for_selector("#clusters[data-state=ready]")
        p.wait_for_selector("#tools[data-state=ready]")  # the tool table above it, deferred too
        found = {"dashboard": _axe(p)}
        p.goto(f"{demo_server.url}/runs?status=error&from=now-24h")
        w.wait_loaded()
        found["runs"] = _axe(p)
        run_id = p.locator("[data-testid=run-row]").first.get_attribute("data-run-id")
        p.goto(f"{demo_server.url}/runs/{quote(run_id, safe='')}")
        w.wait_loaded()
        found["run"] = _axe(p)
        assert found == {"dashboard": [], "runs": [], "run": []}


class _GrafanaStandIn(http.server.BaseHTTPRequestHandler):
    """Answers any GET with a small page and records the path: where the iframes' requests land."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).seen.append(self.path)
        body = b"<!doctype html><title>panel</title><p>panel</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def grafana(tmp_path_factory: pytest.TempPathFactory, demo_db: str) -> Iterator[tuple[Server, str]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GrafanaStandIn)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    origin = f"http://127.0.0.1:{httpd.server_port}"
    gen = start_server(demo_db, tmp_path_factory, grafana_url=f"{origin}/grafana/")
    yield next(gen), origin
    next(gen, None)
    httpd.shutdown()


def test_with_a_grafana_url_the_panels_are_embedded_with_the_page_filters_and_time_range(grafana, page) -> None:
    import requests

    server, origin = grafana
    csp = requests.get(server.url + "/observability", timeout=10).headers["Content-Security-Policy"]
    assert f"frame-src {origin}" in csp and csp.count("frame-src") == 1
    frm, to = 1_796_000_000_000, 1_796_086_400_000
    _GrafanaStandIn.seen.clear()
    p = page.open(f"{server.url}/observability?model=gpt-4o,gpt-4o-mini&tag.env=prod&from={frm}&to={to}")
    frames = p.locator("[data-testid=grafana-frame]")
    assert frames.count() == len(conventions.GRAFANA_EMBED_PANELS)
    for i, (uid, panel_id, title) in enumerate(conventions.GRAFANA_EMBED_PANELS):
        src = urlsplit(frames.nth(i).get_attribute("src"))
        assert f"{src.scheme}://{src.netloc}" == origin and src.path == f"/grafana/d-solo/{uid}/{uid}"
        q = parse_qs(src.query)
        assert q["orgId"] == ["1"] and q["panelId"] == [str(panel_id)]
        assert q["from"] == [str(frm)] and q["to"] == [str(to)]
        assert q["var-model"] == ["gpt-4o", "gpt-4o-mini"]
        assert q["var-project"] == q["var-tool"] == q["var-scenario"] == ["All"]
        assert frames.nth(i).get_attribute("title") == f"Grafana: {title}"
    deadline = time.time() + 10
    while len(_GrafanaStandIn.seen) < frames.count() and time.time() < deadline:
        time.sleep(0.1)
    assert sorted(urlsplit(s).path for s in _GrafanaStandIn.seen) == sorted(
        f"/grafana/d-solo/{uid}/{uid}" for uid, _, _ in conventions.GRAFANA_EMBED_PANELS
    )
    with p.expect_request(lambda r: r.url.startswith(origin)) as req:
        p.select_option("#filter-scenario", ["refund_request"])
    assert parse_qs(urlsplit(req.value.url).query)["var-scenario"] == ["refund_request"]
    screenshot(p, "dashboard-grafana")


def test_without_a_grafana_url_there_is_no_iframe_and_no_frame_src(demo_server, page) -> None:
    import requests

    csp = requests.get(demo_server.url + "/observability", timeout=10).headers["Content-Security-Policy"]
    assert "frame-src" not in csp and "unsafe-inline" not in csp
    p = page.open(f"{demo_server.url}/observability")
    assert p.locator("iframe").count() == 0
    assert p.locator("#grafana-panel").count() == 0
