"""End to end on the real binaries: the app (a real HTTP server on an ephemeral loopback port), a real
Prometheus scraping it and evaluating the generated rules, a real Alertmanager delivering to the app's
webhook. One stack (a module fixture) serves every test here:

- a healthy workload fires nothing (checked by the fixture for its first ``HEALTHY_S`` seconds);
- regressing one slice's failure rate pages ``HypermindErrorRateRegression`` for that slice only;
- slowing one slice tickets ``HypermindLatencyRegression`` (p95) for that slice only;
- failing one project's runs pages ``HypermindRunSLOBurnRate`` tier 1, and Alertmanager inhibits
  that project's slower tiers (2–4) with it;

each reaches GET /api/v1/alerts with its links, and healing resolves it there.

The rules are the SAME generator's output with short windows (seconds instead of hours and days),
written and launched by the same functions ``hypermind-obs stack`` uses. Every test only needs the
fixture's healthy start (not the tests before it): each waits for its own alerts to be quiet first.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from hypermindlabs import conventions as c
from hypermindlabs.cli.stack import (
    ALERTMANAGER_BINARY,
    PROMETHEUS_BINARY,
    Server,
    StackPaths,
    alertmanager_command,
    prometheus_command,
    write_stack_config,
)
from hypermindlabs.config import Settings
from hypermindlabs.generate.alertmanager import AlertmanagerParams, PrometheusParams
from hypermindlabs.generate.rules import BurnTier, RuleParams
from hypermindlabs.web import create_app
from hypermindlabs.wiring import build_pipeline
from tests.conftest import require_binary

# One worker runs the whole module (``make test`` runs xdist with --dist loadgroup), so the
# stack is started once.
pytestmark = [pytest.mark.prometheus, pytest.mark.xdist_group("alerting_e2e")]

PROJECT, SLO_PROJECT = "shop", "billing"
SLICES = [(PROJECT, "refund_request", "gpt-4o-mini"), (PROJECT, "refund_request", "claude-3-5-haiku"),
          (PROJECT, "order_status", "gpt-4o-mini"), (PROJECT, "order_status", "claude-3-5-haiku"),
          (SLO_PROJECT, "invoice", "gpt-4o-mini")]  # fmt: skip
REGRESSED = SLICES[0]  # its failure rate regresses
SLOWED = SLICES[1]  # its p95 latency regresses
TICK_S = 0.25  # one run per slice per tick: 4 runs/s per slice
HEALTHY_MS, SLOW_MS = 800, 6000  # run durations: bucket (0.4, 0.8] vs (3.2, 6.4] of RUN_DURATION_BUCKETS_S
WINDOW, OFFSETS = "15s", ("30s", "1m")
# Tier 1 pages above 14.4 × budget: a budget under 1/14.4 keeps it reachable. With 3 % the tiers
# fire above 43.2 %, 18 %, 9 % and 3 % failing; the healthy 1 % stays under all four, one slice of
# four at 60 % (the failure-rate test) puts its project at 15 % (tiers 3–4, tickets), a project
# failing whole fires all four.
SLO_OBJECTIVE = 0.97
BURN_TIERS = (BurnTier("1", "20s", "5s", 14.4, c.SEVERITY_PAGE), BurnTier("2", "30s", "10s", 6.0, c.SEVERITY_PAGE),
              BurnTier("3", "40s", "15s", 3.0, c.SEVERITY_TICKET), BurnTier("4", "1m", "20s", 1.0, c.SEVERITY_TICKET))  # fmt: skip
HEALTHY_S = 50  # long enough for every regression rule to have fired if it were wrong


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast_rules(public_url: str) -> RuleParams:
    """Seconds where production has hours: same rules, same code path."""
    return RuleParams(
        public_url=public_url, interval="1s", dashboard_window="10s", regression_window=WINDOW,
        regression_offsets=OFFSETS, regression_for="3s", min_runs=20, slo_objective=SLO_OBJECTIVE,
        burn_tiers=BURN_TIERS, cluster_window=WINDOW, cluster_offset="30s", cluster_min_failures=5, cluster_for="3s",
        loss_window=WINDOW, target_down_for="5s",
    )  # fmt: skip


class _Workload:
    """Posts one run per slice per tick. ``failing`` slices fail 60 % of their runs, ``slow`` slices
    last SLOW_MS, ``down`` projects fail every run; otherwise 1 run in 100 of each slice fails."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.failing: set[tuple[str, str, str]] = set()
        self.slow: set[tuple[str, str, str]] = set()
        self.down: set[str] = set()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.posted = 0
        self._n = itertools.count()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _runs(self) -> list[dict]:
        out = []
        now_ms = time.time_ns() // 1_000_000
        tick = next(self._n)  # every slice's run number
        for sl in SLICES:
            project, scenario, model = sl
            down = project in self.down
            bad = sl in self.failing and tick % 5 < 3
            # 1 in 100 runs of each slice (the first one included, so the error series exist from
            # the start); the SLO project's half a period later, so no 5 failures coincide.
            healthy_failure = (tick + (50 if project == SLO_PROJECT else 0)) % 100 == 0
            ms = SLOW_MS if sl in self.slow else HEALTHY_MS
            run = {"run_id": f"e2e-{project}-{scenario}-{model}-{tick}", "kind": "run", "project": project,
                   "scenario": scenario, "model": model, "start_time": now_ms - ms, "duration_ms": ms,
                   "status": "error" if down or bad or healthy_failure else "ok"}  # fmt: skip
            if down:
                run["error"] = {"type": "PaymentGatewayError", "message": "invoice: upstream answered 502 Bad Gateway"}
            elif bad:
                run["error"] = {"type": "ReadTimeout", "message": "crm_update: Read timed out. (read timeout=30)"}
            elif healthy_failure:
                run["error"] = {"type": "RateLimitError", "message": "Rate limit reached for requests"}
            out.append(run)
        return out

    def _loop(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                r = requests.post(f"{self.api}/events", json=self._runs(), timeout=10)
                if r.status_code != 200:
                    self.errors.append(r.text[:300])
                self.posted += 1
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
            self.stop.wait(max(0.0, TICK_S - (time.monotonic() - started)))


@dataclass
class Stack:
    base: str  # the app
    prom: str
    am: str
    workload: _Workload
    servers: list[Server]
    started: float
    healthy_firing: list[dict] = field(default_factory=list)  # what fired during the healthy start
    healthy_alerts: list[dict] = field(default_factory=list)  # GET /api/v1/alerts?state=all after it
    healthy_up: list[str] = field(default_factory=list)
    healthy_posted: int = 0

    @property
    def api(self) -> str:
        return f"{self.base}/api/v1"

    def firing(self, alertname: str | None = None) -> list[dict]:
        q = 'ALERTS{alertstate="firing"}' if alertname is None else f'ALERTS{{alertstate="firing",alertname="{alertname}"}}'
        r = requests.get(f"{self.prom}/api/v1/query", params={"query": q}, timeout=5).json()
        return [s["metric"] for s in r["data"]["result"]]

    def alerts(self, state: str = "firing") -> list[dict]:
        return requests.get(f"{self.api}/alerts", params={"state": state}, timeout=5).json()["alerts"]

    def wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.5)
        logs = "\n".join(f"--- {s.name}\n{s.log_tail(1500)}" for s in self.servers)
        pytest.fail(f"timed out after {timeout}s waiting for {what}\n{logs}")

    def quiet(self, alertname: str, timeout: float = 90) -> None:
        """Wait until no ``alertname`` fires in Prometheus (an earlier test's may still be resolving)."""
        self.wait(f"{alertname} to be quiet", lambda: not self.firing(alertname), timeout)

    def runs(self, runs_url: str) -> list[dict]:
        return requests.get(f"{self.base}{runs_url}", params={"limit": 1000}, timeout=10).json()["runs"]

    def resolved_in_app(self, alertname: str, fingerprints: set[str], timeout: float = 60) -> None:
        def resolved() -> bool:
            if self.firing(alertname):
                return False
            rows = {a["fingerprint"]: a for a in self.alerts("all")}
            return all(rows[fp]["status"] == "resolved" and rows[fp]["ends_at"] for fp in fingerprints)

        self.wait(f"{alertname} to be resolved at GET /api/v1/alerts", resolved, timeout)
        assert not [a for a in self.alerts() if a["fingerprint"] in fingerprints]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prom_bin, am_bin = require_binary(PROMETHEUS_BINARY), require_binary(ALERTMANAGER_BINARY)
    from werkzeug.serving import make_server

    tmp_path: Path = tmp_path_factory.mktemp("alerting-e2e")
    t0 = time.monotonic()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'events.db'}")
    pipeline = build_pipeline(settings)
    app = create_app(settings, pipeline=pipeline)
    web = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{web.server_port}"
    prom_listen, am_listen = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    paths = StackPaths(tmp_path / "stack")
    cfg = write_stack_config(
        paths, fast_rules(base),
        AlertmanagerParams(app_url=base, group_wait="1s", group_interval="1s", repeat_interval_page="1m",
                           repeat_interval_ticket="1m", burn_tiers=BURN_TIERS),
        PrometheusParams(app_target=f"127.0.0.1:{web.server_port}", alertmanager_target=am_listen,
                         scrape_interval="1s", evaluation_interval="1s"),
    )  # fmt: skip
    servers: list[Server] = []
    workload = _Workload(f"{base}/api/v1")
    try:
        servers.append(Server("alertmanager", alertmanager_command(am_bin, cfg["alertmanager"], paths.alertmanager_data,
                                                                   am_listen), tmp_path / "am.log"))  # fmt: skip
        servers.append(Server("prometheus", prometheus_command(prom_bin, cfg["prometheus"], paths.prometheus_data,
                                                               prom_listen, extra=["--rules.alert.resend-delay=1s"]),
                              tmp_path / "prom.log"))  # fmt: skip
        servers[0].wait_ready(f"http://{am_listen}/-/ready")
        servers[1].wait_ready(f"http://{prom_listen}/-/ready")
        s = Stack(base, f"http://{prom_listen}", f"http://{am_listen}", workload, servers, t0)
        workload.thread.start()
        # The healthy start: whatever fires is recorded here and failed by the healthy test.
        healthy_until = time.monotonic() + HEALTHY_S
        while time.monotonic() < healthy_until:
            s.healthy_firing += s.firing()
            time.sleep(1)
        s.healthy_posted = workload.posted
        up = requests.get(f"{s.prom}/api/v1/query", params={"query": f'up{{job="{c.PROM_JOB}"}}'}, timeout=5).json()
        s.healthy_up = [r["value"][1] for r in up["data"]["result"]]
        s.healthy_alerts = s.alerts("all")
        yield s
        print(f"\ne2e stack: {time.monotonic() - t0:.1f} s in all")
    finally:
        workload.stop.set()
        if workload.thread.is_alive():
            workload.thread.join(15)
        for server in reversed(servers):
            server.stop()
        web.shutdown()
        pipeline.close()


def test_a_healthy_workload_fires_nothing(stack: Stack) -> None:
    assert stack.healthy_firing == [], "a healthy workload fired an alert"
    assert stack.healthy_alerts == []
    assert stack.healthy_up == ["1"]
    assert stack.workload.errors == [] and stack.healthy_posted > HEALTHY_S / TICK_S * 0.6


def test_a_regressed_slice_pages_through_prometheus_and_alertmanager_to_the_app_and_healing_resolves_it(
    stack: Stack,
) -> None:
    stack.quiet(c.ALERT_ERROR_RATE_REGRESSION)
    project, scenario, model = REGRESSED
    # Regress one slice: the failure-rate regression fires in Prometheus for that slice only …
    stack.workload.failing.add(REGRESSED)
    t_regressed = time.monotonic()
    try:
        fired = stack.wait("the regression alert in Prometheus",
                           lambda: stack.firing(c.ALERT_ERROR_RATE_REGRESSION), 45)  # fmt: skip
        assert {(a["project"], a["scenario"], a["model"]) for a in fired} == {REGRESSED}
        t_fired = time.monotonic()

        # … and Alertmanager delivers it to the app's webhook: GET /api/v1/alerts shows it with its links.
        def delivered() -> list[dict]:
            return [a for a in stack.alerts() if a["alertname"] == c.ALERT_ERROR_RATE_REGRESSION]

        [alert, *_] = stack.wait("the regression alert at GET /api/v1/alerts", delivered, 30)
        t_delivered = time.monotonic()
        assert alert["status"] == "firing" and alert["severity"] == c.SEVERITY_PAGE and alert["ends_at"] is None
        assert alert["labels"]["model"] == model and alert["labels"]["scenario"] == scenario
        assert alert["labels"][c.LABEL_BASELINE] in OFFSETS
        assert alert["annotations"]["runbook_url"] == f"{stack.base}/docs/alerting#{c.ALERT_ERROR_RATE_REGRESSION.lower()}"
        assert model in alert["annotations"]["summary"] and "%" in alert["annotations"]["description"]
        page = alert["annotations"][c.ANNOTATION_RUNS_URL]
        assert page.startswith(f"{stack.base}/runs?status=error&from=now-{WINDOW}&project={project}")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page).query))
        assert (query["scenario"], query["model"]) == (scenario, model)
        assert alert["runs_url"] == "/api/v1/runs?" + urllib.parse.urlsplit(page).query
        runs = stack.runs(alert["runs_url"])
        assert runs and all(r["model"] == model and r["scenario"] == scenario and r["status"] == "error" for r in runs)
        delivered_fps = {a["fingerprint"] for a in delivered()}
    finally:
        # Heal the slice: the alert resolves in Prometheus and the app lists it as resolved.
        stack.workload.failing.discard(REGRESSED)
    t_healed = time.monotonic()
    stack.resolved_in_app(c.ALERT_ERROR_RATE_REGRESSION, delivered_fps)
    print(f"\nerror rate: regress→firing in Prometheus {t_fired - t_regressed:.1f} s, →delivered "
          f"{t_delivered - t_regressed:.1f} s, heal→resolved in app {time.monotonic() - t_healed:.1f} s")


def test_a_slowed_slice_tickets_a_p95_latency_regression_and_healing_resolves_it(stack: Stack) -> None:
    stack.quiet(c.ALERT_LATENCY_REGRESSION)
    project, scenario, model = SLOWED
    stack.workload.slow.add(SLOWED)
    t_slowed = time.monotonic()
    try:
        fired = stack.wait("the latency regression in Prometheus", lambda: stack.firing(c.ALERT_LATENCY_REGRESSION), 45)
        assert {(a["project"], a["scenario"], a["model"]) for a in fired} == {SLOWED}
        assert {a[c.LABEL_SEVERITY] for a in fired} == {c.SEVERITY_TICKET}
        t_fired = time.monotonic()

        def delivered() -> list[dict]:
            return [a for a in stack.alerts() if a["alertname"] == c.ALERT_LATENCY_REGRESSION]

        [alert, *_] = stack.wait("the latency regression at GET /api/v1/alerts", delivered, 30)
        t_delivered = time.monotonic()
        assert alert["status"] == "firing" and alert["severity"] == c.SEVERITY_TICKET and alert["ends_at"] is None
        assert (alert["labels"]["project"], alert["labels"]["scenario"], alert["labels"]["model"]) == SLOWED
        assert alert["labels"][c.LABEL_BASELINE] in OFFSETS
        assert alert["annotations"]["runbook_url"] == f"{stack.base}/docs/alerting#{c.ALERT_LATENCY_REGRESSION.lower()}"
        assert "p95" in alert["annotations"]["summary"] and model in alert["annotations"]["summary"]
        # The rule's value is the slice's p95 from the buckets: SLOW_MS lands in (3.2 s, 6.4 s].
        assert "s" in alert["annotations"]["description"]
        page = alert["annotations"][c.ANNOTATION_RUNS_URL]
        assert page.startswith(f"{stack.base}/runs?from=now-{WINDOW}&project={project}")  # all runs, not failing ones
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page).query))
        assert (query["scenario"], query["model"]) == (scenario, model) and "status" not in query
        runs = stack.runs(alert["runs_url"])
        assert runs and all((r["project"], r["scenario"], r["model"]) == SLOWED for r in runs)
        assert any(r["duration_ms"] == SLOW_MS for r in runs)
        delivered_fps = {a["fingerprint"] for a in delivered()}
    finally:
        stack.workload.slow.discard(SLOWED)
    t_healed = time.monotonic()
    stack.resolved_in_app(c.ALERT_LATENCY_REGRESSION, delivered_fps)
    print(f"\np95 latency: slow→firing in Prometheus {t_fired - t_slowed:.1f} s, →delivered "
          f"{t_delivered - t_slowed:.1f} s, heal→resolved in app {time.monotonic() - t_healed:.1f} s")


def _am_burn_alerts(stack: Stack, project: str) -> dict[str, dict]:
    """Alertmanager's own view of the project's burn-rate alerts, by tier (state, inhibitedBy)."""
    r = requests.get(f"{stack.am}/api/v2/alerts", timeout=5,
                     params=[("filter", f'alertname="{c.ALERT_SLO_BURN}"'), ("filter", f'project="{project}"')])  # fmt: skip
    r.raise_for_status()
    return {a["labels"][c.LABEL_TIER]: a for a in r.json()}


def test_a_failing_project_pages_the_fastest_slo_burn_tier_which_inhibits_the_slower_ones_and_heals(
    stack: Stack,
) -> None:
    stack.quiet(c.ALERT_SLO_BURN)
    stack.workload.down.add(SLO_PROJECT)
    t_down = time.monotonic()
    try:
        # Every tier burns in Prometheus, for that project only …
        def all_tiers() -> list[dict]:
            fired = [a for a in stack.firing(c.ALERT_SLO_BURN) if a["project"] == SLO_PROJECT]
            return fired if {a[c.LABEL_TIER] for a in fired} == {t.tier for t in BURN_TIERS} else []

        fired = stack.wait("every burn-rate tier in Prometheus", all_tiers, 45)
        assert {a[c.LABEL_TIER]: a[c.LABEL_SEVERITY] for a in fired} == {t.tier: t.severity for t in BURN_TIERS}
        assert {a["project"] for a in stack.firing(c.ALERT_SLO_BURN) if a[c.LABEL_TIER] == "1"} == {SLO_PROJECT}
        t_fired = time.monotonic()

        # … Alertmanager keeps tier 1 active and suppresses tiers 2–4, naming tier 1 among the inhibitors …
        def inhibited() -> dict[str, dict]:
            am = _am_burn_alerts(stack, SLO_PROJECT)
            if set(am) != {"1", "2", "3", "4"} or am["1"]["status"]["state"] != "active":
                return {}
            slower = [am[t]["status"] for t in ("2", "3", "4")]
            ok = all(s["state"] == "suppressed" and am["1"]["fingerprint"] in s["inhibitedBy"] for s in slower)
            return am if ok else {}

        am = stack.wait("tiers 2–4 inhibited by tier 1 in Alertmanager", inhibited, 30)

        # … and the page reaches the app with its links.
        def delivered() -> list[dict]:
            return [a for a in stack.alerts() if a["alertname"] == c.ALERT_SLO_BURN
                    and a["labels"][c.LABEL_TIER] == "1" and a["labels"]["project"] == SLO_PROJECT]  # fmt: skip

        [alert] = stack.wait("the tier-1 burn page at GET /api/v1/alerts", delivered, 30)
        t_delivered = time.monotonic()
        assert alert["fingerprint"] == am["1"]["fingerprint"]
        assert alert["status"] == "firing" and alert["severity"] == c.SEVERITY_PAGE and alert["ends_at"] is None
        assert alert["labels"][c.LABEL_LONG_WINDOW] == "20s" and alert["labels"][c.LABEL_SHORT_WINDOW] == "5s"
        assert alert["annotations"]["runbook_url"] == f"{stack.base}/docs/alerting#{c.ALERT_SLO_BURN.lower()}"
        assert SLO_PROJECT in alert["annotations"]["summary"] and "14.4" in alert["annotations"]["summary"]
        page = alert["annotations"][c.ANNOTATION_RUNS_URL]
        assert page == f"{stack.base}/runs?status=error&from=now-20s&project={SLO_PROJECT}"
        runs = stack.runs(alert["runs_url"])
        assert runs and all(r["project"] == SLO_PROJECT and r["status"] == "error" for r in runs)
    finally:
        stack.workload.down.discard(SLO_PROJECT)
    t_healed = time.monotonic()
    # Healing resolves every tier in Prometheus and the page in the app.
    stack.resolved_in_app(c.ALERT_SLO_BURN, {alert["fingerprint"]})
    assert not [a for a in stack.firing(c.ALERT_SLO_BURN) if a["project"] == SLO_PROJECT]
    print(f"\nSLO burn: down→every tier firing in Prometheus {t_fired - t_down:.1f} s, →tier 1 delivered "
          f"{t_delivered - t_down:.1f} s, heal→resolved in app {time.monotonic() - t_healed:.1f} s")
