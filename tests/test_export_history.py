"""History backfill: the store's past as OpenMetrics, accepted by promtool, answered by a Prometheus on the blocks."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.parse

import pytest
import requests

from hypermindlabs import conventions as c
from hypermindlabs.config import Settings
from hypermindlabs.core.events import parse_event
from hypermindlabs.wiring import build_pipeline
from tests.conftest import require_binary
from tests.grafana_support import free_port
from tests.test_export_view import _run

pytestmark = pytest.mark.prometheus
DAY = 86_400
START = 1_767_225_600  # 2026-01-01T00:00:00Z
CLI = [sys.executable, "-m", "hypermindlabs.cli.main"]


def test_promtool_accepts_the_export_and_prometheus_on_the_blocks_answers_a_past_days_increase(tmp_path):
    promtool = require_binary("promtool")
    prometheus = require_binary("prometheus")
    url = f"sqlite:///{tmp_path / 'events.db'}"
    pipeline = build_pipeline(Settings(database_url=url))
    per_day = {0: 0, 1: 0, 2: 0}
    raw = []
    for i in range(240):
        day = i % 3
        per_day[day] += 1
        offset_s = day * DAY + (i * 577) % (DAY - 600)  # spread over the day, never on its edge
        for e in _run(f"h{i}", 0, status="error" if i % 7 == 0 else "ok", model=("gpt-4o", "claude-3")[i % 2]):
            e["start_time"] = e["start_time"] - 1_780_000_000 * 10**9 + (START + offset_s) * 10**9
            e["end_time"] = e["end_time"] - 1_780_000_000 * 10**9 + (START + offset_s) * 10**9
            raw.append(e)
    assert not pipeline.store.append([parse_event(e) for e in raw]).rejected
    pipeline.close()
    export = tmp_path / "history.om"
    done = subprocess.run([*CLI, "export-openmetrics", "--database-url", url, "--from", str(START),
                           "--to", str(START + 3 * DAY), "--step", "5m", "-o", str(export)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert export.read_text().endswith("# EOF\n")
    blocks = tmp_path / "data"
    made = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(export), str(blocks)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    port = free_port()
    proc = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'p.yml'}", f"--storage.tsdb.path={blocks}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"],
        stdout=(tmp_path / "prom.log").open("w"), stderr=subprocess.STDOUT,
    ) if (tmp_path / "p.yml").write_text("global: {scrape_interval: 1m}\nscrape_configs: []\n") else None  # fmt: skip
    assert proc is not None
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/status/runtimeinfo", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        step_s, window_s = 300, DAY
        for day in (1, 2):
            at = START + (day + 1) * DAY
            q = urllib.parse.quote(f"sum(increase({c.PROM_AGENT_RUNS}[1d]))")
            got = requests.get(f"{base}/query?query={q}&time={at}", timeout=30).json()["data"]["result"]
            inc = float(got[0]["value"][1])
            expected = per_day[day]
            # the consistency test's bound: never below, above by at most ~1.1 steps each side
            assert expected - 1e-9 <= inc <= expected * window_s / (window_s - 2.2 * step_s), (day, inc, expected)
            q = urllib.parse.quote(f"sum({c.PROM_AGENT_RUNS})")
            total = requests.get(f"{base}/query?query={q}&time={at}", timeout=30).json()["data"]["result"]
            assert float(total[0]["value"][1]) == sum(per_day[d] for d in range(day + 1))
    finally:
        proc.terminate()
        proc.wait(20)
