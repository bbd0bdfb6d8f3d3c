"""Two read paths, one truth: a real Prometheus scraping the real /metrics agrees with the store's
metrics API over the same window and slice, and its exemplars point at runs that exist.
"""

from __future__ import annotations

import random
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from hypermindlabs import conventions as c
from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from tests.conftest import open_pipeline, require_binary

pytestmark = pytest.mark.prometheus
MINUTE_NS = 60 * 10**9
SCRAPE_S = 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runs(prefix: str, n: int, start_ns: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        run_id = f"{prefix}-{i:04d}"
        project = rng.choice(["alpha", "beta"])
        failed = rng.random() < 0.3
        start = start_ns + i * 1_000_000
        out.append({"run_id": run_id, "kind": "tool", "tool": rng.choice(["web_search", "crm_update"]),
                    "start_time": start + 1000, "duration_ms": rng.uniform(5, 800)})  # fmt: skip
        run = {"run_id": run_id, "kind": "run", "project": project, "scenario": "refund", "model": "gpt-4o",
               "start_time": start, "duration_ms": rng.lognormvariate(6, 1), "status": "error" if failed else "ok"}  # fmt: skip
        if failed:
            run["error"] = {"type": "ReadTimeout", "message": "Read timed out. (read timeout=30)"}
        out.append(run)
    return out


class _Prometheus:
    def __init__(self, tmp: Path, target_port: int) -> None:
        self.port = _free_port()
        cfg = tmp / "prometheus.yml"
        cfg.write_text(
            f"global: {{scrape_interval: {int(SCRAPE_S * 1000)}ms, scrape_timeout: {int(SCRAPE_S * 1000)}ms}}\n"
            "scrape_configs:\n"
            f"  - job_name: hypermind\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        self.log = tmp / "prometheus.log"
        self.proc = subprocess.Popen(
            [require_binary("prometheus"), f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--enable-feature=exemplar-storage"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}/api/v1"

    def query(self, promql: str, at: float | None = None) -> float | None:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        r = requests.get(f"{self.base}/query", params=params, timeout=5).json()
        result = r["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, expected: float, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.query(promql) == expected:
                    return time.time()
            except (requests.RequestException, KeyError):
                pass
            time.sleep(0.25)
        pytest.fail(f"Prometheus never saw {promql} == {expected}: {self.log.read_text()[-1500:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def test_prometheus_increase_over_a_window_agrees_with_the_store_api_and_exemplars_name_stored_runs(tmp_path):
    from werkzeug.serving import make_server

    pipeline = open_pipeline(f"sqlite:///{tmp_path / 'events.db'}")
    store = pipeline.store
    app = create_app(Settings(database_url="unused"), pipeline=pipeline)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_port}/api/v1"
    prom = _Prometheus(tmp_path, server.server_port)
    rng = random.Random(42)
    try:
        # Warm-up, dated well before the window: every series exists (at its first value) before
        # the window opens, so the window's increase is not lost to a series appearing mid-range.
        warm = []
        for status in ("ok", "error"):
            for proj in ("alpha", "beta"):
                warm.append({"run_id": f"warm-{proj}-{status}", "kind": "run", "project": proj, "scenario": "refund",
                             "model": "gpt-4o", "start_time": time.time_ns() - 10 * MINUTE_NS, "duration_ms": 10,
                             "status": status})  # fmt: skip
        assert requests.post(f"{api}/events", json=warm, timeout=30).status_code == 200
        n_warm = sum(1 for e in warm if e["kind"] == "run")
        prom.wait_for(f"sum({c.PROM_AGENT_RUNS})", n_warm)
        time.sleep(2.2)  # two more scrapes at the warm-up values
        t1 = time.time()
        window_from_ns = int(t1 * 1e9)

        time.sleep(1.5)  # at least one scrape inside the window still at the old values
        batch = _runs("win", 240, window_from_ns + 1, rng)
        for i in range(0, len(batch), 100):
            r = requests.post(f"{api}/events", json=batch[i : i + 100], timeout=30)
            assert r.status_code == 200 and r.json()["accepted"] == len(batch[i : i + 100])
        prom.wait_for(f"sum({c.PROM_AGENT_RUNS})", n_warm + 240)
        time.sleep(4)
        t2 = time.time()
        window_to_ns = int(t2 * 1e9)
        span = t2 - t1

        for labels, params in [
            ("", {}),
            ('{project="alpha"}', {"project": "alpha"}),
            ('{project="beta",status="error"}', {"project": "beta", "status": "error"}),
        ]:
            q = {"from": str(window_from_ns), "to": str(window_to_ns)}
            q.update({k: v for k, v in params.items() if k != "status"})
            row = requests.get(f"{api}/metrics/summary", params=q, timeout=30).json()["rows"][0]
            expected = row["errors"] if params.get("status") == "error" else row["runs"]
            listed = requests.get(f"{api}/runs", params={**q, **params, "limit": 1000}, timeout=30).json()["runs"]
            assert len(listed) == expected, labels
            metric = f"sum({c.PROM_AGENT_RUNS}{labels})"
            delta = prom.query(metric, t2) - prom.query(metric, t1)
            assert delta == expected, (labels, delta, expected)
            # increase() extrapolates from the first and last samples in the range to its edges, by at
            # most ~1.1 scrape intervals each side: it is never below the true increase, and above
            # it by at most that share of the window.
            inc = prom.query(f"sum(increase({c.PROM_AGENT_RUNS}{labels}[{int(span * 1000)}ms]))", t2)
            assert expected - 1e-9 <= inc <= expected * span / (span - 2.2 * SCRAPE_S), (labels, inc, expected)

        now = time.time()
        found = requests.get(
            f"{prom.base}/query_exemplars",
            params={"query": c.PROM_AGENT_RUN_DURATION_BUCKET, "start": f"{t1:.3f}", "end": f"{now + 1:.3f}"},
            timeout=10,
        ).json()["data"]
        run_ids = {e["labels"]["run_id"] for series in found for e in series["exemplars"]}
        assert run_ids, "Prometheus stored exemplars"
        for run_id in run_ids:
            r = requests.get(f"{api}/runs/{urllib.parse.quote(run_id, safe='')}", timeout=10)
            assert r.status_code == 200, run_id
    finally:
        prom.stop()
        server.shutdown()
        store.close()
