"""How fast the dashboard's default view is, on the demo workload, in a real Chromium.

Prints:
- the API calls the default view (/observability, last 24 h) makes, each timed from Python one after
  the other (server + HTTP on loopback), and their total — goal ≤ 300 ms;
- the same calls as the browser made them (in parallel), from the Resource Timing API: the sum of
  their durations and the span from the first start to the last end;
- navigation start → every chart drawn and every panel filled, measured in the browser
  (``performance.now()`` when the last chart's draw hook and the page's "loaded" mark have fired)
  — goal ≤ 1.5 s. The triage panel, three screens down, loads when scrolled near (since #12's
  third session): it is not part of the default view; the bench then scrolls to it and prints
  scroll → clusters shown, and its call apart;
- the page's own main-thread work during that load, from Chromium's performance metrics (CDP
  ``Performance.getMetrics``): script, layout and style time, all tasks, and the DOM nodes — what
  the page costs apart from waiting on the server;
- as the same-run baseline, ``GET /healthz`` (the cheapest request of the server) and the ratios.

Deferred panels (the tool table and the triage panel, more than two screens down) load when
scrolled near: they are not part of the default view; their calls are printed apart.

    .venv/bin/python bench/ui.py                      # builds the demo (14 days, 1500 runs/day) in a temp dir
    .venv/bin/python bench/ui.py --database-url sqlite:///var/demo.db --repeat 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypermindlabs.config import Settings  # noqa: E402
from hypermindlabs.demo.load import load_demo  # noqa: E402
from hypermindlabs.web import create_app  # noqa: E402
from hypermindlabs.wiring import build_pipeline  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
WATCH = """
(() => {
  const charts = ['chart-latency', 'chart-errors', 'chart-tokens'];
  const check = () => {
    const drawn = charts.every((id) => { const c = document.getElementById(id); return c && (c.dataset.drawn || c.dataset.state === 'empty'); });
    if (drawn && !window.__benchCharts) window.__benchCharts = performance.now();
    if (drawn && document.body && document.body.dataset.loaded && !window.__benchDrawn) window.__benchDrawn = performance.now();
  };
  new MutationObserver(check).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-drawn', 'data-loaded']});
})();
"""


def build_demo(days: int, runs_per_day: int) -> str:
    folder = Path(tempfile.mkdtemp(prefix="hm-bench-ui-"))
    url = f"sqlite:///{folder / 'demo.db'}"
    pipeline = build_pipeline(Settings(database_url=url))
    t = time.perf_counter()
    res = load_demo(pipeline.store, seed=7, days=days, runs_per_day=runs_per_day, end=datetime.now(UTC).replace(microsecond=0),
                    progress=False)  # fmt: skip
    print(f"demo: {res.accepted} events ({days} days × {runs_per_day} runs/day) in {time.perf_counter() - t:.1f} s")
    pipeline.close()
    return url


def serve(url: str):
    from waitress import create_server

    pipeline = build_pipeline(Settings(database_url=url))
    app = create_app(pipeline.settings, pipeline=pipeline)
    srv = create_server(app, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=srv.run, daemon=True).start()
    return f"http://127.0.0.1:{srv.effective_port}", srv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", help="an existing demo database (else one is built)")
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--runs-per-day", type=int, default=1500)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    url = args.database_url or build_demo(args.days, args.runs_per_day)
    base, srv = serve(url)
    from playwright.sync_api import sync_playwright

    nav_ms: list[float] = []
    chart_ms: list[float] = []
    parallel_sum: list[float] = []
    parallel_span: list[float] = []
    calls: list[str] = []
    deferred: list[str] = []
    triage_ms: list[float] = []
    main_thread: list[dict[str, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for i in range(args.repeat + 1):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            page.add_init_script(WATCH)
            cdp = ctx.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.goto(f"{base}/observability")
            page.wait_for_function("() => window.__benchDrawn", timeout=60_000)
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            drawn = page.evaluate("window.__benchDrawn")
            charts_ms = page.evaluate("window.__benchCharts")
            res = page.evaluate("performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'))"
                                ".map(e => [e.name, e.startTime, e.responseEnd])")  # fmt: skip
            t0 = page.evaluate("performance.now()")
            page.locator("#triage-panel").scroll_into_view_if_needed()
            page.wait_for_selector("#clusters[data-state=ready], #clusters[data-state=empty]", timeout=60_000)
            page.wait_for_selector("#tools:not([data-state=deferred]):not([data-state=loading])", timeout=60_000)
            triage_ms.append(page.evaluate("performance.now()") - t0)
            later = page.evaluate("performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'))"
                                  ".map(e => e.name)")  # fmt: skip
            ctx.close()
            label = "cold" if i == 0 else f"warm {i}"
            print(f"  {label:>7}: navigation → time charts drawn {charts_ms:7.1f} ms, every panel filled {drawn:7.1f} ms; "
                  f"{len(res)} API calls")
            if i == 0:
                calls = [name.removeprefix(base) for name, _, _ in res]
                deferred = [name.removeprefix(base) for name in later[len(res):]]
                continue
            nav_ms.append(drawn)
            main_thread.append({"script": metrics["ScriptDuration"] * 1000, "layout": metrics["LayoutDuration"] * 1000,
                                "style": metrics["RecalcStyleDuration"] * 1000, "tasks": metrics["TaskDuration"] * 1000,
                                "nodes": metrics["Nodes"]})  # fmt: skip
            chart_ms.append(charts_ms)
            parallel_sum.append(sum(b - a for _, a, b in res))
            parallel_span.append(max(b for _, _, b in res) - min(a for _, a, _ in res))
        browser.close()

    # The same calls one after the other from Python (the window pinned as the page pinned it).
    session = requests.Session()
    session.get(f"{base}/healthz")
    health = []
    for _ in range(20):
        t = time.perf_counter()
        session.get(f"{base}/healthz").raise_for_status()
        health.append((time.perf_counter() - t) * 1000)
    seq_totals = []
    cpu_totals = []
    per_call: dict[str, list[float]] = {c: [] for c in calls}
    per_call_cpu: dict[str, list[float]] = {c: [] for c in calls}
    per_deferred: dict[str, list[float]] = {c: [] for c in deferred}
    for _ in range(args.repeat):
        total = cpu_total = 0.0
        for c in calls:
            cpu = time.process_time()
            t = time.perf_counter()
            r = session.get(base + c)
            ms = (time.perf_counter() - t) * 1000
            cpu_ms = (time.process_time() - cpu) * 1000
            per_call_cpu[c].append(cpu_ms)
            cpu_total += cpu_ms
            if r.status_code >= 400 and len(seq_totals) == 0:
                print(f"  answered {r.status_code}: {c}")
            per_call[c].append(ms)
            total += ms
        seq_totals.append(total)
        cpu_totals.append(cpu_total)
        for c in deferred:
            t = time.perf_counter()
            session.get(base + c)
            per_deferred[c].append((time.perf_counter() - t) * 1000)
    srv.close()

    h = statistics.median(health)
    print("\nAPI calls of the default view (median of", args.repeat, "runs, one after the other; wall time, and the "
          "CPU time of this process, server and client, which the machine's load disturbs less):")  # fmt: skip
    for c, v in sorted(per_call.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"  {statistics.median(v):7.1f} ms  (cpu {statistics.median(per_call_cpu[c]):6.1f} ms)  {c[:140]}")
    for c, v in per_deferred.items():
        print(f"  {statistics.median(v):7.1f} ms  {c[:140]}  (deferred: loads when scrolled near)")
    seq = statistics.median(seq_totals)
    nav = statistics.median(nav_ms)
    print(f"\nbaseline GET /healthz: {h:.2f} ms (median of 20)")
    print(f"total of all {len(calls)} API calls, sequential: {seq:.1f} ms  (goal ≤ 300 ms; {seq / h:.0f}× /healthz); "
          f"CPU time {statistics.median(cpu_totals):.1f} ms")  # fmt: skip
    print(f"as the browser made them (parallel): sum of durations {statistics.median(parallel_sum):.1f} ms, "
          f"first start → last end {statistics.median(parallel_span):.1f} ms")  # fmt: skip
    print(f"navigation → the three time charts drawn: {statistics.median(chart_ms):.1f} ms median "
          f"(min {min(chart_ms):.1f}, max {max(chart_ms):.1f})")
    print(f"navigation → every chart and panel drawn: {nav:.1f} ms median (goal ≤ 1500 ms; min {min(nav_ms):.1f}, "
          f"max {max(nav_ms):.1f})")  # fmt: skip
    mt = {k: statistics.median(m[k] for m in main_thread) for k in main_thread[0]}
    print(f"the page's main thread during a load (median): script {mt['script']:.0f} ms, layout {mt['layout']:.0f} ms, "
          f"style {mt['style']:.0f} ms, all tasks {mt['tasks']:.0f} ms; {mt['nodes']:.0f} DOM nodes")  # fmt: skip
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"scroll to the triage panel → its clusters shown: {statistics.median(triage_ms[1:]):.1f} ms median")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
