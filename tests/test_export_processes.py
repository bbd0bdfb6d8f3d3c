"""Acceptance of issue #8 with real processes: every door counts once, every worker and restart agrees.

``hypermind-obs serve --workers 2`` (gunicorn), a concurrent ``hypermind-obs ingest`` of a file and a
``RunManager`` in this process all write one database (SQLite file or PostgreSQL schema); a real
Prometheus (exemplar storage on) scrapes through a restart of the server. Then, per slice, the
Prometheus delta equals the API's count and the run list's length, no counter reset, and every
exemplar's run_id resolves with GET /api/v1/runs/<id>.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from hypermindlabs import conventions as c
from hypermindlabs.sdk import RunManager
from tests.conftest import (
    require_binary,
)
from tests.grafana_support import free_port
from tests.test_export_view import T0, _run
from tests.test_metrics_endpoint import FIXED_NOW_NS  # noqa: F401 - same clock family as the other tests

pytestmark = pytest.mark.prometheus
CLI = [sys.executable, "-m", "hypermindlabs.cli.main"]


def _get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback test server
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _start(url: str, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HYPERMIND_DATABASE_URL": url}
    proc = subprocess.Popen([*CLI, "serve", "--workers", "2", "--port", str(port)], env=env,
                            stdout=log.open("a"), stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise AssertionError(log.read_text()[-2000:])


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _prom_query(base: str, q: str) -> list:
    status, body = _get(f"{base}/query?query={urllib.parse.quote(q)}")
    assert status == 200, body
    return body["data"]["result"]  # type: ignore[index]


def test_workers_a_cli_ingest_and_a_run_manager_count_once_in_prometheus_through_a_restart(database, tmp_path):
    prometheus = require_binary("prometheus")
    from hypermindlabs.config import Settings
    from hypermindlabs.wiring import build_pipeline

    pipeline = build_pipeline(Settings(database_url=database))  # migrates before anything starts
    port, prom_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    server = _start(database, port, log)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        f"scrape_configs:\n  - job_name: hypermind\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    prom = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'prom'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--enable-feature=exemplar-storage"],
        stdout=(tmp_path / "prom.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        time.sleep(3)  # a few scrapes of the empty view: the window starts at zero
        events_file = tmp_path / "events.ndjson"
        with events_file.open("w") as f:
            for i in range(60):
                for e in _run(f"cli-{i}", i, status="error" if i % 4 == 0 else "ok", model="claude-3",
                              failed_tools=1 if i % 4 == 0 else 0):  # fmt: skip
                    f.write(json.dumps(e) + "\n")
        ingest = subprocess.Popen([*CLI, "ingest", "--database-url", database, str(events_file)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        with RunManager(pipeline.store, project="acme") as rm:
            for i in range(25):
                with rm.run("answer", scenario="refund", model="gpt-4o") as run:
                    with run.llm() as llm:
                        llm.set_usage(input_tokens=10, output_tokens=2)
                if i == 12:
                    _stop(server)  # restart in the middle
                    server = _start(database, port, log)
        out, _ = ingest.communicate(timeout=120)
        assert ingest.returncode == 0, out
        time.sleep(4)  # scrapes after the last write
        app_base = f"http://127.0.0.1:{port}/api/v1"
        resets = _prom_query(base, f"sum(resets({c.PROM_AGENT_RUNS}[10m]))")
        assert not resets or float(resets[0]["value"][1]) == 0
        by_model = _prom_query(base, f"sum by (model) (max_over_time({c.PROM_AGENT_RUNS}[10m]))")
        got = {r["metric"].get("model"): float(r["value"][1]) for r in by_model}
        assert got == {"claude-3": 60, "gpt-4o": 25}
        for model, n in got.items():
            _, runs = _get(f"{app_base}/runs?model={model}&limit=1000&from={T0 // 10**6 - 60_000}&to=now")
            assert len(runs["runs"]) == n  # type: ignore[index]
            _, summary = _get(f"{app_base}/metrics/summary?model={model}&from={T0 // 10**6 - 60_000}&to=now")
            assert summary["rows"][0]["runs"] == n  # type: ignore[index]
        failures = _prom_query(base, f"sum(max_over_time({c.PROM_AGENT_RUN_FAILURES}[10m]))")
        assert float(failures[0]["value"][1]) == 15
        status, ex = _get(
            f"{base}/query_exemplars?query={urllib.parse.quote(c.PROM_AGENT_RUN_DURATION_BUCKET)}"
            f"&start={T0 / 1e9 - 60}&end={time.time() + 60}"
        )
        run_ids = {e["labels"]["run_id"] for s in ex["data"] for e in s["exemplars"]}  # type: ignore[index]
        assert run_ids
        for rid in run_ids:
            assert _get(f"{app_base}/runs/{urllib.parse.quote(rid)}")[0] == 200
    finally:
        _stop(server)
        prom.terminate()
        prom.wait(20)
        pipeline.close()
