"""The dashboards proven without Grafana (DESIGN §8): a real workload goes into the app, a real
Prometheus (exemplar storage on, a promtool-backfilled history for the ``offset`` baselines, the rules
under prometheus/ when present) scrapes it, and

* every panel target's expression — variables as ``.*`` and as a concrete value, ``$__rate_interval``,
  ``$__interval`` and ``$__range`` as real durations — runs through Prometheus' query API, succeeds
  and returns data;
* every data link, rendered for every series those queries return, opens the web UI's ``/runs`` page
  (200) and, resolved with the identical query string against ``GET /api/v1/runs``, lists exactly that
  series' runs in that window, which Prometheus' own count confirms;
* every exemplar of the latency panels resolves, through the datasource's exemplar link, to a run.

The fixture is module-scoped because it takes a real Prometheus half a minute to see the workload;
the tests only read from it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

from hypermindlabs import conventions as c
from hypermindlabs.config import Settings
from hypermindlabs.generate.grafana_dashboards import panel_targets
from hypermindlabs.web import create_app
from tests.conftest import open_pipeline, require_binary
from tests.grafana_support import (
    DASHBOARDS_DIR,
    DATASOURCE_FILE,
    Prometheus,
    backfill,
    interpolate_link,
    interpolate_query,
    openmetrics_history,
    rule_files,
)

pytestmark = pytest.mark.prometheus
SCRAPE_S = 1.0
RATE_INTERVAL = "15s"  # Grafana: max($__interval + scrape, 4 × scrape) for this scrape interval
STEP_S = 2
PROJECTS = ("alpha", "beta")
SCENARIOS = ("refund", "triage")
MODELS = ("gpt-4o", "claude-3-haiku")
TOOLS = ("web_search", "crm_update")
CONCRETE = {"project": "alpha", "model": "gpt-4o", "scenario": "refund", "tool": "crm_update"}
DAY_S = 86400


@dataclass
class Run:
    run_id: str
    project: str
    scenario: str
    model: str
    status: str
    tools: set[str]
    failure_class: str | None = None
    clusters: set[str] = field(default_factory=set)


@dataclass
class Stack:
    base: str
    prom: Prometheus
    runs: dict[str, Run]
    window_ms: tuple[int, int]


def _workload(rng: random.Random, n: int, prefix: str, start_ns: int) -> tuple[list[dict], list[Run]]:
    """Runs with an llm step and one or two tool calls; failures are tool timeouts or rate limits."""
    events: list[dict] = []
    runs: list[Run] = []
    for i in range(n):
        run_id = f"{prefix}-{i:03d}"
        # Every slice of the concrete values, and every model × scenario, occurs in every batch.
        project, scenario, model = PROJECTS[i % 2], SCENARIOS[(i // 2) % 2], MODELS[(i // 4) % 2]
        t = start_ns + i * 1_000_000
        failure = ("timeout", "rate_limit", None, None)[(i // 8 + i) % 4] if i % 3 else "timeout"
        tools = [TOOLS[1]] if failure == "timeout" else list(rng.sample(TOOLS, rng.choice((1, 2))))
        events.append({"run_id": run_id, "kind": "llm", "model": model, "start_time": t + 1000,
                       "duration_ms": rng.uniform(200, 900), "usage": {"input_tokens": 900, "output_tokens": 60},
                       **({"status": "error", "error": {"type": "RateLimitError",
                                                        "message": "Error code: 429 - Rate limit reached for requests"}}
                          if failure == "rate_limit" else {})})  # fmt: skip
        for j, tool in enumerate(tools):
            failed_call = failure == "timeout" and tool == TOOLS[1]
            events.append({"run_id": run_id, "kind": "tool", "tool": tool, "start_time": t + 2000 + j,
                           "duration_ms": 30000.0 if failed_call else rng.uniform(20, 400),
                           **({"status": "error", "error": {"type": "ReadTimeout",
                                                            "message": "Read timed out. (read timeout=30)"}}
                              if failed_call else {})})  # fmt: skip
        run = {"run_id": run_id, "kind": "run", "project": project, "scenario": scenario, "model": model,
               "start_time": t, "duration_ms": rng.lognormvariate(7.5, 0.6) + (30000 if failure == "timeout" else 0),
               "usage": {"input_tokens": 900, "output_tokens": 60}}  # fmt: skip
        if failure == "timeout":
            run["error"] = {"type": "ReadTimeout", "message": "Read timed out. (read timeout=30)"}
        elif failure == "rate_limit":
            run["error"] = {"type": "RateLimitError", "message": "Error code: 429 - Rate limit reached for requests"}
        events.append(run)
        runs.append(Run(run_id, project, scenario, model, "error" if failure else "ok", set(tools)))
    return events, runs


def _history_times(now_s: int) -> list[int]:
    """Every 5 s around now-7d and now-1d (the window the test queries, shifted by the panels'
    offsets): the regression baselines. promtool's time grows with the samples, so nothing else."""
    return [t for back in (7 * DAY_S, DAY_S) for t in range(now_s - back - 120, now_s - back + 240, 5)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    from werkzeug.serving import make_server

    prometheus, promtool = require_binary("prometheus"), require_binary("promtool")
    tmp = tmp_path_factory.mktemp("grafana")
    pipeline = open_pipeline(f"sqlite:///{tmp / 'events.db'}")
    app = create_app(Settings(database_url="unused"), pipeline=pipeline)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"

    # Baseline history (1d and 7d ago) for the regression panels, the way the compose stack's
    # backfill service writes it: OpenMetrics through promtool into the TSDB before Prometheus starts.
    now_s = int(time.time())
    labelsets = [{"project": p, "scenario": s, "model": m, "status": st}
                 for p in PROJECTS for s in SCENARIOS for m in MODELS for st in ("ok", "error")]  # fmt: skip
    tsdb = tmp / "tsdb"
    backfill(promtool, openmetrics_history(labelsets, _history_times(now_s),
                                           duration_s=lambda ls: 2.0 if ls["status"] == "ok" else 30.0),
             tmp, tsdb)  # fmt: skip
    rules = rule_files()
    # ALERTS has series only while an alert fires: one rule that fires on this workload's failures.
    test_rules = tmp / "acceptance.rules.yml"
    test_rules.write_text(yaml.safe_dump({"groups": [{"name": "grafana-acceptance", "rules": [{
        "alert": "HypermindAcceptanceFailures", "labels": {"severity": "ticket"},
        "expr": f'sum(increase({c.PROM_AGENT_RUNS}{{status="error",job="hypermind"}}[1m])) > 0'}]}]}))  # fmt: skip
    prom = Prometheus(prometheus, tmp, server.server_port, scrape_s=SCRAPE_S, rules=[*rules, test_rules], tsdb=tsdb)
    rng = random.Random(13)
    runs: dict[str, Run] = {}
    try:
        window_from_ms = time.time_ns() // 1_000_000 - 30_000
        n = 0
        for batch in range(6):  # spread over several scrapes, so rates and increases are non-zero
            events, batch_runs = _workload(rng, 24, f"b{batch}", time.time_ns() - 500_000_000)
            r = requests.post(f"{base}/api/v1/events", json=events, timeout=30)
            assert r.status_code == 200, r.text
            runs.update((x.run_id, x) for x in batch_runs)
            n += len(batch_runs)
            prom.wait_for(f'sum({c.PROM_AGENT_RUNS}{{job="hypermind"}})', n)
            time.sleep(1.5)
        # Only this test's rule: the generated rules under prometheus/ may fire too on this workload.
        prom.wait_for(
            f'count({c.PROM_ALERTS}{{{c.PROM_ALERTSTATE_LABEL}="firing",alertname="HypermindAcceptanceFailures"}})', 1
        )
        time.sleep(3 * SCRAPE_S)
        window_to_ms = time.time_ns() // 1_000_000
        for run in runs.values():  # the derived columns (triage's class and clusters), from the raw events
            trace = requests.get(f"{base}/api/v1/runs/{run.run_id}", timeout=10).json()
            for ev in trace["events"]:
                if ev.get("kind") == "run":
                    run.failure_class = ev.get("failure_class")
                if ev.get("cluster_id"):
                    run.clusters.add(ev["cluster_id"])
        yield Stack(base, prom, runs, (window_from_ms, window_to_ms))
    finally:
        prom.stop()
        server.shutdown()
        pipeline.store.close()


def _dashboards() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))]


def _targets() -> list[tuple[str, dict, dict]]:
    return [(d["uid"], p, t) for d in _dashboards() for p, t in panel_targets(d)]


def _values(mode: str) -> dict[str, str]:
    if mode == "all":
        return {v: ".*" for v in CONCRETE}
    return dict(CONCRETE)


def _query(stack: Stack, target: dict, values: dict[str, str]) -> list[dict]:
    frm, to = (x / 1000 for x in stack.window_ms)
    expr = interpolate_query(target["expr"], {
        **values, "__rate_interval": RATE_INTERVAL, "__interval": f"{STEP_S}s", "__range": f"{int(to - frm)}s"})  # fmt: skip
    if target["instant"]:
        return stack.prom.api("query", {"query": expr, "time": f"{to:.3f}"})["result"]
    return stack.prom.api("query_range", {"query": expr, "start": f"{frm:.3f}", "end": f"{to:.3f}",
                                          "step": f"{STEP_S}s"})["result"]  # fmt: skip


@pytest.mark.parametrize("mode", ["all", "concrete"])
def test_every_panel_query_succeeds_and_returns_data_with_variables_as_all_and_as_a_value(stack, mode):
    targets = _targets()
    assert len(targets) >= 15
    empty = []
    for uid, panel, target in targets:
        result = _query(stack, target, _values(mode))
        if not result or not any(s.get("values") or s.get("value") for s in result):
            empty.append(f"{uid} / {panel['title']} / {target['refId']}: {target['expr']}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def _label_options(stack: Stack, variable: dict) -> list[str]:
    """What Grafana lists for a label_values(selector, label) variable: Prometheus' label values."""
    query = variable["query"]
    inner = query[len("label_values(") : -1]
    selector, label = inner.rsplit(",", 1)
    selector = interpolate_query(selector, {v: ".*" for v in CONCRETE})
    return stack.prom.api(f"label/{label.strip()}/values", {"match[]": selector})


def _matches(run: Run, params: dict[str, list[str]]) -> bool:
    """The run list's documented filters, recomputed from the raw events (docs/api.md)."""
    for name, raw in params.items():
        values = {v for item in raw for v in item.split(",") if v}
        if name in ("from", "to") or not values:
            continue
        got = {"project": {run.project}, "model": {run.model}, "scenario": {run.scenario}, "status": {run.status},
               "tool": run.tools, "error_class": {run.failure_class}, "cluster": run.clusters}[name]  # fmt: skip
        if not values & got:
            return False
    return True


@dataclass(frozen=True)
class RenderedLink:
    where: str
    url: str
    params: dict[str, list[str]]
    expected: frozenset[str]


def _rendered_links(stack: Stack, mode: str) -> Iterator[RenderedLink]:
    """Every data link, rendered as Grafana would for every series its panel's queries return, with
    the runs recomputed from the raw events that the run list's documented filters select."""
    frm, to = stack.window_ms
    for dashboard in _dashboards():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert set(variables) >= {"project", "model", "tool", "scenario", "datasource", "hypermind_url"}
        options = {name: (_label_options(stack, v) if mode == "all" else [CONCRETE[name]])
                   for name, v in variables.items() if name in CONCRETE}  # fmt: skip
        for panel, target in panel_targets(dashboard):
            links = panel["fieldConfig"]["defaults"]["links"]
            assert links, f"{dashboard['uid']} / {panel['title']} has no data link"
            for series in _query(stack, target, _values(mode)):
                for link in links:
                    url = interpolate_link(link["url"], variables=options, labels=series["metric"],
                                           builtins={"hypermind_url": stack.base, "__from": str(frm), "__to": str(to)})  # fmt: skip
                    params = parse_qs(urlsplit(url).query, keep_blank_values=True)
                    expected = frozenset(r.run_id for r in stack.runs.values() if _matches(r, params))
                    where = f"{dashboard['uid']} / {panel['title']} / {series['metric']}: {url}"
                    yield RenderedLink(where, url, params, expected)


@pytest.mark.parametrize("mode", ["all", "concrete"])
def test_every_data_link_lists_exactly_the_runs_of_its_series_and_window(stack, mode):
    checked = 0
    prom_checked = 0
    for link in _rendered_links(stack, mode):
        parts = urlsplit(link.url)
        assert parts.path == "/runs", link.url
        api = requests.get(f"{stack.base}/api/v1/runs?{parts.query}&limit=1000", timeout=30)
        assert api.status_code == 200, (link.url, api.text)
        listed = {r["run_id"] for r in api.json()["runs"]}
        assert listed == link.expected, link.where
        assert listed, f"no runs behind {link.where}"
        page = requests.get(link.url, timeout=30)  # the web UI's run list, same query string
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"], link.url
        checked += 1
        # Prometheus' own count of the same slice (live series only: job="hypermind").
        run_level = {k: v[0] for k, v in link.params.items() if k in ("project", "model", "scenario", "status")}
        if set(link.params) - {"from", "to"} <= set(run_level):
            sel = ",".join(
                ['job="hypermind"', *(f'{k}=~"{v.replace(",", "|")}"' for k, v in sorted(run_level.items()))]
            )
            # At the window's end: a scrape that times out on a loaded machine marks series stale after it.
            at = stack.window_ms[1] / 1000
            assert stack.prom.scalar(f"sum({c.PROM_AGENT_RUNS}{{{sel}}})", at) == len(listed), link.where
            prom_checked += 1
    assert checked >= 20 and prom_checked >= 3, (checked, prom_checked)


@pytest.mark.browser
def test_the_web_ui_run_list_opened_by_a_data_link_shows_exactly_the_series_runs_in_chromium(stack):
    from playwright.sync_api import sync_playwright

    from tests.web_ui_harness import CHROMIUM, CHROMIUM_ARGS

    require_binary("chromium")
    first_per_panel = {}
    for link in _rendered_links(stack, "concrete"):
        first_per_panel.setdefault(link.where.split(" / {")[0], link)
    assert len(first_per_panel) >= 15
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            for link in first_per_panel.values():
                page.goto(link.url)
                page.wait_for_selector("#run-list[data-state=ready], #run-list[data-state=empty]")
                shown = {tr.get_attribute("data-run-id") for tr in page.query_selector_all("[data-testid=run-row]")}
                assert shown == link.expected, link.where
                assert page.query_selector("[data-testid=next-page]") is None, link.where  # one page: all of them
        finally:
            browser.close()


def test_every_exemplar_of_the_latency_panels_links_to_a_stored_run(stack):
    ds = yaml.safe_load(DATASOURCE_FILE.read_text())["datasources"][0]
    destinations = {d["name"]: d for d in ds["jsonData"]["exemplarTraceIdDestinations"]}
    template = destinations[c.EXEMPLAR_RUN_ID]["url"]
    frm, to = (x / 1000 for x in stack.window_ms)
    exemplar_targets = [(uid, p, t) for uid, p, t in _targets() if t.get("exemplar")]
    assert {p["title"] for _, p, _ in exemplar_targets} >= {c.GRAFANA_EMBED_PANELS[1][2]}
    for uid, panel, target in exemplar_targets:
        expr = interpolate_query(target["expr"], {**_values("all"), "__rate_interval": RATE_INTERVAL})
        found = stack.prom.api("query_exemplars", {"query": expr, "start": f"{frm:.3f}", "end": f"{to + 1:.3f}"})
        run_ids = {e["labels"][c.EXEMPLAR_RUN_ID] for s in found for e in s["exemplars"]}
        assert run_ids, f"{uid} / {panel['title']}: no exemplars"
        for run_id in run_ids:
            # Grafana's provisioning expands ${HYPERMIND_PUBLIC_URL} and reads $$ as $.
            url = template.replace("${HYPERMIND_PUBLIC_URL}", stack.base).replace("$${__value.raw}", run_id)
            assert urlsplit(url).path == f"/runs/{run_id}", url
            assert run_id in stack.runs
            assert requests.get(f"{stack.base}/api/v1/runs/{run_id}", timeout=10).status_code == 200, run_id
            page = requests.get(url, timeout=10)  # the web UI's trace page
            assert page.status_code == 200 and "text/html" in page.headers["Content-Type"], url
