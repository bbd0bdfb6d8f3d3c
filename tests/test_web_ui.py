"""The web UI in a real Chromium over the demo workload: filters, URL state, zoom, drill-down, traces.

Every number the page shows is compared with the API's answer for the same filters, and every
drill-down is checked against the runs it lists (count equal, every run matching). The tests run at
the harness's fixed ``NOW`` (app and browser clocks pinned), never at the wall clock.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.web_ui_harness import NOW_MS, all_run_rows, new_context, screenshot

pytestmark = pytest.mark.browser
MIN = 60_000


def window(hours: int = 24) -> tuple[int, int]:
    """The window a page opened at NOW pins "the last ``hours``" to (its end: NOW, a whole minute)."""
    assert NOW_MS % MIN == 0
    return NOW_MS - hours * 3600_000, NOW_MS


def kpis(p) -> dict[str, float | None]:
    p.wait_for_selector("#kpis[data-state=ready]")
    out = {}
    for tid in ("kpi-runs", "kpi-error-rate", "kpi-p95", "kpi-tokens", "kpi-tokens-estimated", "kpi-tool-calls"):
        v = p.get_attribute(f"[data-testid={tid}]", "data-value")
        out[tid] = float(v) if v else None
    out["errors"] = float(p.get_attribute("[data-testid=kpi-error-rate]", "data-errors"))
    return out


def expected_kpis(server, params) -> dict[str, float | None]:
    row = server.get("/api/v1/metrics/summary", params)["rows"][0]
    t = row["tokens"]
    return {
        "kpi-runs": row["runs"], "kpi-error-rate": row["failure_rate"], "kpi-p95": row["latency_ms"]["p95"],
        "kpi-tokens": t["input"] + t["output"], "kpi-tokens-estimated": t["input_proxy"] + t["output_proxy"],
        "kpi-tool-calls": row["tool_calls_per_run"], "errors": row["errors"],
    }  # fmt: skip


def query_of(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def is_summary(req) -> bool:
    q = query_of(req.url)
    return "/api/v1/metrics/summary" in req.url and "group_by" not in q and int(q["to"]) - int(q["from"]) > 0


def test_each_filter_changes_the_requests_and_the_numbers_which_equal_the_api(demo_server, page) -> None:
    frm, to = window()
    p = page.open(f"{demo_server.url}/observability?from={frm}&to={to}")
    before = kpis(p)
    assert before == expected_kpis(demo_server, {"from": frm, "to": to})
    assert before["kpi-runs"] > 500

    steps = [
        ("project", lambda: p.select_option("#filter-project", ["acme-support"]), {"project": "acme-support"}),
        ("model", lambda: p.select_option("#filter-model", ["gpt-4o-mini"]), {"model": "gpt-4o-mini"}),
        ("scenario", lambda: p.select_option("#filter-scenario", ["refund_request", "order_status"]),
         {"scenario": "order_status,refund_request"}),
        ("tool", lambda: p.select_option("#filter-tool", ["order_lookup"]), {"tool": "order_lookup"}),
        ("tag", lambda: (p.select_option("#tag-key", "env"), p.select_option("#tag-value", "prod"),
                         p.click("#tag-add")), {"tag.env": "prod"}),
    ]  # fmt: skip
    expected = {"from": str(frm), "to": str(to)}
    previous = before
    for name, act, added in steps:
        with p.expect_request(
            lambda r, a=added: is_summary(r) and all(query_of(r.url).get(k) == v for k, v in a.items())
        ) as req:
            act()
        sent = query_of(req.value.url)
        expected.update(added)
        assert sent == {**expected, **{k: v for k, v in sent.items() if k not in expected}}, name
        assert set(sent) == set(expected), f"{name}: the page sent {sent}"
        now = kpis(p)
        assert now == expected_kpis(demo_server, expected), name
        assert now["kpi-runs"] < previous["kpi-runs"], f"{name} did not change the numbers"
        assert f"{name}" in p.url or "tag.env=prod" in p.url
        previous = now

    # The time preset: the page pins "now-6h" once, and asks the API for exactly that window.
    with p.expect_request(is_summary) as req:
        p.select_option("#time-preset", "now-6h")
    sent = query_of(req.value.url)
    assert int(sent["to"]) - int(sent["from"]) == 6 * 3600_000
    assert kpis(p) == expected_kpis(demo_server, sent)
    assert "from=now-6h" in p.url


def test_reloading_restores_the_view_and_back_returns_to_the_previous_one(demo_server, page) -> None:
    frm, to = window()
    p = page.open(f"{demo_server.url}/observability?from={frm}&to={to}")
    first = kpis(p)
    with p.expect_request(is_summary):
        p.select_option("#filter-model", ["claude-3-haiku", "gpt-4o"])
    p.wait_for_selector("#kpis[data-state=ready]")
    filtered = kpis(p)
    assert filtered != first and "model=claude-3-haiku%2Cgpt-4o" in p.url
    p.reload()
    page.wait_loaded()
    assert kpis(p) == filtered
    assert p.eval_on_selector("#filter-model", "s => [...s.selectedOptions].map(o => o.value)") == [
        "claude-3-haiku",
        "gpt-4o",
    ]
    p.go_back()
    page.wait_loaded()
    p.wait_for_function("() => !location.search.includes('model=')")
    p.wait_for_selector("#kpis[data-state=ready]")
    assert kpis(p) == first
    assert p.eval_on_selector("#filter-model", "s => s.selectedOptions.length") == 0


def test_dragging_across_a_time_chart_narrows_the_time_range(demo_server, page) -> None:
    frm, to = window()
    p = page.open(f"{demo_server.url}/observability?from={frm}&to={to}")
    p.wait_for_selector("#chart-latency[data-drawn]")
    p.locator("#chart-latency").scroll_into_view_if_needed()
    box = p.locator("#chart-latency .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    with p.expect_request(is_summary) as req:
        p.mouse.move(box["x"] + box["width"] * 0.3, y)
        p.mouse.down()
        p.mouse.move(box["x"] + box["width"] * 0.45, y, steps=4)
        p.mouse.move(box["x"] + box["width"] * 0.6, y, steps=4)
        p.mouse.up()
    sent = query_of(req.value.url)
    a, b = int(sent["from"]), int(sent["to"])
    assert frm < a < b < to
    assert 0.2 < (b - a) / (to - frm) < 0.4
    q = query_of(p.url)
    assert (int(q["from"]), int(q["to"])) == (a, b)
    assert kpis(p) == expected_kpis(demo_server, sent)
    p.go_back()
    p.wait_for_function(f"() => location.search.includes('from={frm}')")


def test_drill_down_from_the_kpis_lists_exactly_the_runs_behind_them(demo_server, page) -> None:
    frm, to = window()
    p = page.open(f"{demo_server.url}/observability?model=gpt-4o-mini&scenario=refund_request&from={frm}&to={to}")
    k = kpis(p)
    assert k["errors"] > 0
    with p.expect_navigation():
        p.click("[data-testid=kpi-error-rate]")
    page.wait_loaded()
    assert urlsplit(p.url).path == "/runs"
    rows = all_run_rows(page)
    assert len(rows) == k["errors"]
    assert all(
        r["status"] == "error" and r["model"] == "gpt-4o-mini" and r["scenario"] == "refund_request" for r in rows
    )
    assert all(frm <= r["start_ms"] < to for r in rows)
    p.go_back()
    page.wait_loaded()
    with p.expect_navigation():
        p.click("[data-testid=kpi-runs]")
    page.wait_loaded()
    rows = all_run_rows(page)
    assert len(rows) == k["kpi-runs"] and len({r["run_id"] for r in rows}) == len(rows)
    assert all(r["model"] == "gpt-4o-mini" and r["scenario"] == "refund_request" for r in rows)
    assert sum(r["status"] == "error" for r in rows) == k["errors"]


def test_drill_down_from_a_chart_point_and_a_bar_segment_lists_exactly_their_runs(demo_server, page) -> None:
    frm, to = window()
    url = f"{demo_server.url}/observability?from={frm}&to={to}"
    p = page.open(url)
    p.wait_for_selector("#chart-latency[data-drawn]")
    ts = demo_server.get("/api/v1/metrics/timeseries", {"from": frm, "to": to})
    points = {pt["t"]: pt for pt in ts["series"][0]["points"]}
    p.locator("#chart-latency").scroll_into_view_if_needed()
    box = p.locator("#chart-latency .u-over").bounding_box()
    for frac in (0.5, 0.55, 0.6, 0.45, 0.65, 0.4, 0.7):
        p.mouse.click(box["x"] + box["width"] * frac, box["y"] + box["height"] * 0.5)
        try:
            p.wait_for_url("**/runs?**", timeout=2000)
            break
        except Exception:  # noqa: BLE001 - an empty step: try the next x
            continue
    page.wait_loaded()
    q = query_of(p.url)
    point = points[int(q["from"])]
    assert int(q["to"]) - int(q["from"]) == ts["step_seconds"] * 1000
    rows = all_run_rows(page)
    assert len(rows) == point["count"] > 0
    assert all(int(q["from"]) <= r["start_ms"] < int(q["to"]) for r in rows)
    assert sum(r["status"] == "error" for r in rows) == point["errors"]

    # A segment of the "by dimension" bars: the failed runs of the largest scenario.
    p.goto(url)
    page.wait_loaded()
    row = p.locator("[data-testid=dimension-row]").first
    errors = int(row.get_attribute("data-errors"))
    name = row.locator(".bar-label").inner_text()
    with p.expect_navigation():
        row.locator("[data-testid=segment-error]").click()
    page.wait_loaded()
    rows = all_run_rows(page)
    assert len(rows) == errors > 0
    assert all(r["scenario"] == name and r["status"] == "error" for r in rows)


def expected_drill_down(f: dict) -> tuple[int, str | None]:
    """How many runs a finding's runs_url lists, and their status: the failing runs behind a rate
    (``current_count``; for a failure class's share, the slice's failed runs of that class), else
    every run of the slice in the window (``current_n``)."""
    if f["metric"] in ("failure_rate", "failure_class_share"):
        return f["current_count"], "error"
    return f["current_n"], None


def test_drill_down_from_a_regression_row_lists_exactly_its_runs(demo_server, page) -> None:
    frm, to = window()
    p = page.open(f"{demo_server.url}/observability?from={frm}&to={to}")
    p.wait_for_selector("#regressions[data-state=ready]")
    ans = demo_server.get("/api/v1/regressions", {"from": frm, "to": to, "baseline": "previous"})
    findings = ans["findings"]
    shown = p.locator("[data-testid=regression-row]")
    assert shown.count() == len(findings) > 1
    assert [shown.nth(i).get_attribute("data-id") for i in range(len(findings))] == [f["id"] for f in findings]
    assert "first" in shown.first.get_attribute("class").split()
    assert findings[0]["slice"] == {"model": "gpt-4o-mini", "scenario": "refund_request"}
    p.locator("#regression-panel").screenshot(path=str(screenshot_path("regression-view")))
    # Every row links to its own finding's runs (the API's runs_url as the page /runs).
    for i, f in enumerate(findings):
        href = shown.nth(i).locator("[data-testid=regression-runs]").get_attribute("href")
        assert href == "/runs" + f["runs_url"].removeprefix("/api/v1/runs"), f["id"]
    # Drill down from the first row and from the first row of every other metric shown.
    picked = {}
    for i, f in enumerate(findings):
        picked.setdefault(f["metric"], i)
    assert len(picked) > 1, [f["metric"] for f in findings]
    for metric, i in picked.items():
        f = findings[i]
        with p.expect_navigation():
            shown.nth(i).locator("[data-testid=regression-runs]").click()
        page.wait_loaded()
        rows = all_run_rows(page)
        count, status = expected_drill_down(f)
        assert len(rows) == count > 0, (metric, f["slice"], f["current_n"])
        assert len({r["run_id"] for r in rows}) == len(rows)
        if status:
            assert all(r["status"] == status for r in rows), metric
        if metric == "failure_class_share":
            assert all(r["failure_class"] == f["failure_class"] for r in rows)
        for dim, value in f["slice"].items():
            if dim in ("model", "scenario", "project"):
                assert all(r[dim] == value for r in rows), (metric, dim)
        # The current window (widened to whole hours by the analysis, as its numbers are).
        assert all(ans["from_ms"] <= r["start_ms"] < ans["to_ms"] for r in rows)
        p.goto(f"{demo_server.url}/observability?from={frm}&to={to}")
        p.wait_for_selector("#regressions[data-state=ready]")
        shown = p.locator("[data-testid=regression-row]")


def test_on_the_demo_the_regression_view_shows_the_injected_slice_first(demo_server, page) -> None:
    assert "regressions" not in demo_server.stand_ins  # the real analysis (#11) is on main
    p = page.open(f"{demo_server.url}/observability")  # the default view: the last 24 h at NOW
    p.wait_for_selector("#regressions[data-state=ready]")
    first = p.locator("[data-testid=regression-row]").first
    assert "first" in first.get_attribute("class").split()
    text = first.locator("[data-testid=regression-slice]").inner_text()
    assert set(text.split(" · ")) == {"model = gpt-4o-mini", "scenario = refund_request"}, text
    assert first.locator("td").nth(1).inner_text() == "failure rate"


def show_triage(p) -> None:
    """Scroll to the triage panel and wait for its clusters and for the tool table above it (both load
    when near the viewport)."""
    p.locator("#triage-panel").scroll_into_view_if_needed()
    p.wait_for_selector("#clusters[data-state=ready], #clusters[data-state=empty]")
    p.wait_for_selector("#tools[data-state=ready], #tools[data-state=empty]")


def test_the_tool_table_loads_when_scrolled_near_with_the_apis_numbers(demo_server, page) -> None:
    frm, to = window()
    asked: list[str] = []
    page.page.on("request", lambda r: asked.append(r.url) if "kind=tool" in r.url else None)
    p = page.open(f"{demo_server.url}/observability?from={frm}&to={to}")
    # More than two screens down: no tool summary read before it comes near.
    assert p.get_attribute("#tools", "data-state") == "deferred" and asked == []
    p.locator("#tools-panel").scroll_into_view_if_needed()
    p.wait_for_selector("#tools[data-state=ready]")
    assert len(asked) == 1
    assert query_of(asked[0]) == {"from": str(frm), "to": str(to), "kind": "tool", "group_by": "tool"}
    api = demo_server.get("/api/v1/metrics/summary", {"from": frm, "to": to, "kind": "tool", "group_by": "tool"})
    want = [(r["group"]["tool"], f"{r['steps']:,}") for r in api["rows"] if r["group"]["tool"] is not None][:20]
    shown = p.eval_on_selector_all("[data-testid=tool-row]", "rows => rows.map(r => [r.querySelector('th').innerText, "
                                   "r.querySelector('td').innerText])")  # fmt: skip
    assert [tuple(r) for r in shown] == want and want
    # Seen once, it reloads with the rest on a change of view.
    p.evaluate("window.scrollTo(0, 0)")
    with p.expect_request(lambda r: "kind=tool" in r.url and "model=" in r.url):
        p.select_option("#filter-model", ["gpt-4o-mini"])


def test_a_charts_data_table_is_built_when_opened_with_every_point_and_its_runs(demo_server, page) -> None:
    frm, to = window()
    p = page.open(f"{demo_server.url}/observability?from={frm}&to={to}")
    p.wait_for_selector("#chart-latency[data-drawn]")
    table = p.locator("#chart-latency details.data-table")
    assert table.locator("tr").count() == 0  # nothing built before it is opened
    api = demo_server.get("/api/v1/metrics/timeseries", {"from": frm, "to": to})
    points = [pt for pt in api["series"][0]["points"] if pt["count"]]
    assert f"({len(points)} points with runs" in table.locator("summary").inner_text()
    table.locator("summary").click()
    rows = table.locator("tbody tr")
    rows.first.wait_for()
    assert rows.count() == len(points)
    links = table.locator("tbody a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert links == ["/runs" + pt["runs_url"].removeprefix("/api/v1/runs") for pt in points]


def test_drill_down_from_a_cluster_lists_its_runs_and_its_page_shows_samples(demo_server, page) -> None:
    frm, to = window()
    asked: list[str] = []
    page.page.on("request", lambda r: asked.append(r.url) if "/api/v1/failures/clusters" in r.url else None)
    p = page.open(f"{demo_server.url}/observability?from={frm}&to={to}")
    # Three screens down, the triage panel waits to be scrolled to: no clusters report read before.
    assert p.get_attribute("#clusters", "data-state") == "deferred" and asked == []
    show_triage(p)
    assert len(asked) == 1 and query_of(asked[0]) == {"from": str(frm), "to": str(to), "limit": "12"}
    row = p.locator("[data-testid=cluster-row]").first
    cid, count = row.get_attribute("data-cluster-id"), int(row.get_attribute("data-count"))
    api = next(c for c in demo_server.get("/api/v1/failures/clusters", {"from": frm, "to": to})["clusters"]
               if c["cluster_id"] == cid)  # fmt: skip
    assert count == api.get("failed_runs", api["count"]) > 0
    with p.expect_navigation():
        row.locator("[data-testid=cluster-runs]").click()
    page.wait_loaded()
    rows = all_run_rows(page)
    assert len(rows) == count
    for r in rows[:40]:
        trace = demo_server.get(f"/api/v1/runs/{r['run_id']}")
        assert any(e["cluster_id"] == cid for e in trace["events"]), r["run_id"]
        assert frm <= r["start_ms"] < to
    p.go_back()
    page.wait_loaded()
    show_triage(p)
    with p.expect_navigation():
        p.locator("[data-testid=cluster-row]").first.locator("[data-testid=cluster-link]").click()
    page.wait_loaded()
    assert p.inner_text("[data-testid=cluster-label]") == api["label"]
    assert p.inner_text("[data-testid=cluster-hint]") == api["hint"]
    assert p.locator("[data-testid=sample-run]").count() == min(20, count)


def test_a_run_opens_its_trace_with_every_step(demo_server, page) -> None:
    frm, to = window()
    p = page.open(f"{demo_server.url}/runs?status=error&model=gpt-4o-mini&from={frm}&to={to}")
    first = p.locator("[data-testid=run-row]").first
    run_id = first.get_attribute("data-run-id")
    screenshot(p, "run-list")
    with p.expect_navigation():
        first.locator("[data-testid=run-link]").click()
    page.wait_loaded()
    trace = demo_server.get(f"/api/v1/runs/{run_id}")
    spans = p.locator("[data-testid=span-row]")
    assert spans.count() == len(trace["events"]) > 1
    assert [spans.nth(i).get_attribute("data-event-id") for i in range(spans.count())] == [
        e["event_id"] for e in trace["events"]
    ]
    failed = [e for e in trace["events"] if e["status"] == "error"]
    assert p.locator("[data-testid=span-error]").count() == sum(1 for e in failed if e["error"])
    assert p.locator("[data-testid=span-hint]").count() == len(failed)
    assert p.inner_text("[data-testid=run-status]") == "error"
    screenshot(p, "run-trace")


def test_the_dashboard_fits_a_phone_and_its_screenshots_are_saved(demo_server, browser) -> None:
    ctx = new_context(browser, viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True,
                      has_touch=True)  # fmt: skip
    p = ctx.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.goto(f"{demo_server.url}/observability")
    p.wait_for_selector("body[data-loaded]")
    overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    screenshot(p, "dashboard-phone")
    ctx.close()
    assert overflow <= 1, f"the page is {overflow}px wider than the phone"
    assert not errors


def test_the_dashboard_screenshot_is_saved(demo_server, page) -> None:
    p = page.open(f"{demo_server.url}/observability")
    p.wait_for_selector("#chart-latency[data-drawn]")
    show_triage(p)
    p.evaluate("window.scrollTo(0, 0)")
    assert screenshot(p, "dashboard").stat().st_size > 10_000


def screenshot_path(name: str):
    from tests.web_ui_harness import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
