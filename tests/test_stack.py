"""``hypermind-obs stack`` as users run it: a real subprocess, real Prometheus and Alertmanager binaries."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from hypermindlabs import conventions as c
from hypermindlabs.cli.stack import ALERTMANAGER_BINARY, PROMETHEUS_BINARY
from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from hypermindlabs.wiring import build_pipeline
from tests.conftest import require_binary

pytestmark = pytest.mark.prometheus
# The console script users run (pyproject [project.scripts]), from the same environment.
CLI = [str(Path(sys.executable).with_name("hypermind-obs"))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(addr: str) -> bool:
    host, port = addr.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def test_stack_without_the_binaries_says_how_to_install_them(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty PATH: neither server is found
    out = subprocess.run([*CLI, "stack", "--dir", str(tmp_path / "stack")], capture_output=True, text=True,
                         env=env, timeout=60)  # fmt: skip
    assert out.returncode == 2
    assert "sudo apt-get install prometheus prometheus-alertmanager" in out.stdout
    assert not (tmp_path / "stack").exists()


def test_stack_runs_prometheus_and_alertmanager_against_the_app_with_its_token_and_ctrl_c_stops_both(tmp_path):
    require_binary(PROMETHEUS_BINARY)
    require_binary(ALERTMANAGER_BINARY)
    from werkzeug.serving import make_server

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'events.db'}", api_token="stack-token")
    pipeline = build_pipeline(settings)
    app = create_app(settings, pipeline=pipeline)
    web = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    app_url = f"http://127.0.0.1:{web.server_port}"
    prom, am = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "HYPERMIND_API_TOKEN": "stack-token", "HYPERMIND_PUBLIC_URL": "https://obs.example.com"}
    proc = subprocess.Popen([*CLI, "stack", "--app-url", app_url, "--prometheus", prom, "--alertmanager", am,
                             "--dir", str(tmp_path / "stack")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        up = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = requests.get(f"http://{prom}/api/v1/query", params={"query": f'up{{job="{c.PROM_JOB}"}}'}, timeout=2)
                result = r.json()["data"]["result"]
                up = result[0]["value"][1] if result else None
            except requests.RequestException:
                pass
            if up == "1":
                break
            time.sleep(0.5)
        assert up == "1", f"Prometheus never scraped the app with the token (up={up}); exit={proc.poll()}"
        rules = requests.get(f"http://{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {g["name"] for g in rules} == {c.RULE_GROUP_RECORDING, c.RULE_GROUP_SLO, c.RULE_GROUP_ALERTS}
        links = [r["annotations"][c.ANNOTATION_RUNS_URL] for g in rules for r in g["rules"] if r["type"] == "alerting"]
        assert links and all(u.startswith("https://obs.example.com/runs?") for u in links)
        status = requests.get(f"http://{am}/api/v2/status", timeout=5).json()
        assert f"{app_url}{c.ALERTS_API_PATH}" in status["config"]["original"]
        assert "stack-token" not in status["config"]["original"]  # the token stays in its 0600 file
        token_file = tmp_path / "stack" / "config" / "api-token"
        assert token_file.read_text() == "stack-token" and token_file.stat().st_mode & 0o077 == 0
        assert (tmp_path / "stack" / "prometheus").is_dir() and (tmp_path / "stack" / "alertmanager").is_dir()

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(30) == 0
        assert not _listening(prom) and not _listening(am)
        assert "stopped Prometheus and Alertmanager" in proc.stdout.read()
    finally:
        if proc.poll() is None:  # stop it the way users do, so it stops its servers too
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        web.shutdown()
        pipeline.close()


def test_the_slo_objective_setting_is_read_as_a_number_and_a_bad_one_is_named():
    from hypermindlabs.config import ConfigError

    assert Settings.from_env({"HYPERMIND_SLO_OBJECTIVE": "0.999"}).slo_objective == 0.999
    with pytest.raises(ConfigError, match="HYPERMIND_SLO_OBJECTIVE"):
        Settings.from_env({"HYPERMIND_SLO_OBJECTIVE": "ninety-nine"})


def test_stack_refuses_an_objective_outside_zero_and_one_before_starting_anything(tmp_path):
    require_binary(PROMETHEUS_BINARY)
    require_binary(ALERTMANAGER_BINARY)
    env = {**os.environ, "HYPERMIND_SLO_OBJECTIVE": "1.5"}
    out = subprocess.run([*CLI, "stack", "--dir", str(tmp_path / "stack")], capture_output=True, text=True,
                         env=env, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "HYPERMIND_SLO_OBJECTIVE" in out.stdout and "slo_objective" in out.stdout
    assert not (tmp_path / "stack").exists()
