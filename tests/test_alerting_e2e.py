"""End to end on the real binaries: the app (a real HTTP server on an ephemeral loopback port), a real
Prometheus scraping it and evaluating the generated rules, a real Alertmanager delivering to the app's
webhook. A healthy workload fires nothing; regressing one slice fires the failure-rate regression,
which reaches GET /api/v1/alerts with its links; healing the slice resolves it there.

The rules are the SAME generator's output with short windows (seconds instead of hours and days),
written and launched by the same functions ``hypermind-obs stack`` uses.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
import urllib.parse

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

pytestmark = pytest.mark.prometheus

PROJECT = "shop"
SLICES = [("refund_request", "gpt-4o-mini"), ("refund_request", "claude-3-5-haiku"),
          ("order_status", "gpt-4o-mini"), ("order_status", "claude-3-5-haiku")]  # fmt: skip
REGRESSED = SLICES[0]
TICK_S = 0.25  # one run per slice per tick: 4 runs/s per slice
WINDOW, OFFSETS = "15s", ("30s", "1m")
HEALTHY_S = 50  # ≥ offset + window + for: long enough for the regression rule to have fired if it were wrong


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast_rules(public_url: str) -> RuleParams:
    """Seconds where production has hours: same rules, same code path."""
    return RuleParams(
        public_url=public_url, interval="1s", dashboard_window="10s", regression_window=WINDOW,
        regression_offsets=OFFSETS, regression_for="3s", min_runs=20, slo_objective=0.5,
        burn_tiers=(BurnTier("1", "20s", "5s", 14.4, c.SEVERITY_PAGE), BurnTier("2", "30s", "10s", 6.0, c.SEVERITY_PAGE),
                    BurnTier("3", "40s", "15s", 3.0, c.SEVERITY_TICKET), BurnTier("4", "1m", "20s", 1.0, c.SEVERITY_TICKET)),
        cluster_window=WINDOW, cluster_offset="30s", cluster_min_failures=5, cluster_for="3s", loss_window=WINDOW,
        target_down_for="5s",
    )  # fmt: skip


class _Workload:
    """Posts one run per slice per tick; ``regressed`` makes 60 % of REGRESSED's runs fail."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.regressed = False
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.posted = 0
        self._n = itertools.count()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _runs(self) -> list[dict]:
        out = []
        now_ms = time.time_ns() // 1_000_000
        for scenario, model in SLICES:
            i = next(self._n) // len(SLICES)  # this slice's run number
            bad = self.regressed and (scenario, model) == REGRESSED and i % 5 < 3
            healthy_failure = i % 100 == 0  # 1 in 100 runs of each slice, the first one included
            run = {"run_id": f"e2e-{scenario}-{model}-{i}", "kind": "run", "project": PROJECT, "scenario": scenario, "model": model,
                   "start_time": now_ms - 800, "duration_ms": 800, "status": "error" if bad or healthy_failure else "ok"}  # fmt: skip
            if bad:
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


def _firing(prom: str, alertname: str | None = None) -> list[dict]:
    q = 'ALERTS{alertstate="firing"}' if alertname is None else f'ALERTS{{alertstate="firing",alertname="{alertname}"}}'
    r = requests.get(f"{prom}/api/v1/query", params={"query": q}, timeout=5).json()
    return [s["metric"] for s in r["data"]["result"]]


def _wait(what: str, check, timeout: float, servers: list[Server]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    logs = "\n".join(f"--- {s.name}\n{s.log_tail(1500)}" for s in servers)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{logs}")


def test_a_regressed_slice_pages_through_prometheus_and_alertmanager_to_the_app_and_healing_resolves_it(tmp_path):
    prom_bin, am_bin = require_binary(PROMETHEUS_BINARY), require_binary(ALERTMANAGER_BINARY)
    from werkzeug.serving import make_server

    t0 = time.monotonic()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'events.db'}")
    pipeline = build_pipeline(settings)
    app = create_app(settings, pipeline=pipeline)
    web = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{web.server_port}"
    api = f"{base}/api/v1"
    prom_listen, am_listen = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    paths = StackPaths(tmp_path / "stack")
    cfg = write_stack_config(
        paths, fast_rules(base),
        AlertmanagerParams(app_url=base, group_wait="1s", group_interval="1s", repeat_interval_page="1m",
                           repeat_interval_ticket="1m"),
        PrometheusParams(app_target=f"127.0.0.1:{web.server_port}", alertmanager_target=am_listen,
                         scrape_interval="1s", evaluation_interval="1s"),
    )  # fmt: skip
    servers: list[Server] = []
    workload = _Workload(api)
    try:
        servers.append(Server("alertmanager", alertmanager_command(am_bin, cfg["alertmanager"], paths.alertmanager_data,
                                                                   am_listen), tmp_path / "am.log"))  # fmt: skip
        servers.append(Server("prometheus", prometheus_command(prom_bin, cfg["prometheus"], paths.prometheus_data,
                                                               prom_listen, extra=["--rules.alert.resend-delay=1s"]),
                              tmp_path / "prom.log"))  # fmt: skip
        servers[0].wait_ready(f"http://{am_listen}/-/ready")
        servers[1].wait_ready(f"http://{prom_listen}/-/ready")
        prom = f"http://{prom_listen}"
        workload.thread.start()

        # 1. Healthy: nothing fires in Prometheus, nothing reaches the app.
        healthy_until = time.monotonic() + HEALTHY_S
        while time.monotonic() < healthy_until:
            assert _firing(prom) == [], "a healthy workload fired an alert"
            time.sleep(1)
        assert workload.errors == [] and workload.posted > HEALTHY_S / TICK_S * 0.6
        up = requests.get(f"{prom}/api/v1/query", params={"query": f'up{{job="{c.PROM_JOB}"}}'}, timeout=5).json()
        assert [s["value"][1] for s in up["data"]["result"]] == ["1"]
        assert requests.get(f"{api}/alerts?state=all", timeout=5).json()["alerts"] == []
        t_healthy = time.monotonic()

        # 2. Regress one slice: the failure-rate regression fires in Prometheus for that slice only …
        workload.regressed = True
        t_regressed = time.monotonic()
        scenario, model = REGRESSED
        fired = _wait("the regression alert in Prometheus",
                      lambda: _firing(prom, c.ALERT_ERROR_RATE_REGRESSION), 45, servers)  # fmt: skip
        assert {(a["project"], a["scenario"], a["model"]) for a in fired} == {(PROJECT, scenario, model)}
        t_fired = time.monotonic()

        # … and Alertmanager delivers it to the app's webhook: GET /api/v1/alerts shows it with its links.
        def delivered() -> list[dict]:
            alerts = requests.get(f"{api}/alerts", timeout=5).json()["alerts"]
            return [a for a in alerts if a["alertname"] == c.ALERT_ERROR_RATE_REGRESSION]

        [alert, *_] = _wait("the regression alert at GET /api/v1/alerts", delivered, 30, servers)
        t_delivered = time.monotonic()
        assert alert["status"] == "firing" and alert["severity"] == c.SEVERITY_PAGE and alert["ends_at"] is None
        assert alert["labels"]["model"] == model and alert["labels"]["scenario"] == scenario
        assert alert["labels"][c.LABEL_BASELINE] in OFFSETS
        assert alert["annotations"]["runbook_url"] == f"{base}/docs/alerting#{c.ALERT_ERROR_RATE_REGRESSION.lower()}"
        assert model in alert["annotations"]["summary"] and "%" in alert["annotations"]["description"]
        page = alert["annotations"][c.ANNOTATION_RUNS_URL]
        assert page.startswith(f"{base}/runs?status=error&from=now-{WINDOW}&project={PROJECT}")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page).query))
        assert (query["scenario"], query["model"]) == (scenario, model)
        assert alert["runs_url"] == "/api/v1/runs?" + urllib.parse.urlsplit(page).query
        runs = requests.get(f"{base}{alert['runs_url']}", params={"limit": 1000}, timeout=10).json()["runs"]
        assert runs and all(r["model"] == model and r["scenario"] == scenario and r["status"] == "error" for r in runs)
        delivered_fps = {a["fingerprint"] for a in delivered()}

        # 3. Heal the slice: the alert resolves in Prometheus and the app lists it as resolved.
        workload.regressed = False
        t_healed = time.monotonic()

        def resolved() -> bool:
            if _firing(prom, c.ALERT_ERROR_RATE_REGRESSION):
                return False
            rows = {a["fingerprint"]: a for a in requests.get(f"{api}/alerts?state=all", timeout=5).json()["alerts"]}
            return all(rows[fp]["status"] == "resolved" and rows[fp]["ends_at"] for fp in delivered_fps)

        _wait("the regression alert to be resolved at GET /api/v1/alerts", resolved, 60, servers)
        t_resolved = time.monotonic()
        firing_now = requests.get(f"{api}/alerts", timeout=5).json()["alerts"]
        assert not [a for a in firing_now if a["alertname"] == c.ALERT_ERROR_RATE_REGRESSION]
        print(f"\ne2e timings (s): start→healthy done {t_healthy - t0:.1f}, regress→firing in Prometheus "
              f"{t_fired - t_regressed:.1f}, →delivered {t_delivered - t_regressed:.1f}, heal→resolved in app "
              f"{t_resolved - t_healed:.1f}, total {time.monotonic() - t0:.1f}")
    finally:
        workload.stop.set()
        if workload.thread.is_alive():
            workload.thread.join(15)
        for s in reversed(servers):
            s.stop()
        web.shutdown()
        pipeline.close()
