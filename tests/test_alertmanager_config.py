"""alertmanager.yml: ``amtool check-config`` clean, every route by ``amtool config routes test``, and every
inhibition rule proven on a real Alertmanager (amtool cannot evaluate inhibit_rules).

The cases are committed under ``prometheus/tests/`` (route_cases.yml, inhibition_cases.yml).
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from hypermindlabs import conventions as c
from hypermindlabs.cli.stack import ALERTMANAGER_BINARY, Server, alertmanager_command
from hypermindlabs.generate.alertmanager import AlertmanagerParams, alertmanager_config, alertmanager_dict
from tests.conftest import require_binary

pytestmark = pytest.mark.prometheus
PROM = Path(__file__).resolve().parents[1] / "prometheus"
CONFIG = PROM / "alertmanager.yml"
ROUTES = yaml.safe_load((PROM / "tests" / "route_cases.yml").read_text())["routes"]
INHIBITIONS = yaml.safe_load((PROM / "tests" / "inhibition_cases.yml").read_text())["inhibitions"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_amtool_check_config_is_clean():
    amtool = require_binary("amtool")
    out = subprocess.run([amtool, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout and "4 inhibit rules" in out.stdout and "3 receivers" in out.stdout


@pytest.mark.parametrize("case", ROUTES, ids=[r["name"] for r in ROUTES])
def test_amtool_routes_each_alert_to_its_receiver(case):
    amtool = require_binary("amtool")
    labels = [f"{k}={v}" for k, v in case["labels"].items()]
    out = subprocess.run([amtool, "config", "routes", "test", f"--config.file={CONFIG}",
                          f"--verify.receivers={case['receiver']}", *labels],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == case["receiver"]


def test_the_route_cases_cover_every_route_and_receiver():
    cfg = alertmanager_dict(AlertmanagerParams(app_url="http://127.0.0.1:8080"))
    receivers = {cfg["route"]["receiver"], *(r["receiver"] for r in cfg["route"]["routes"])}
    assert receivers == {r["name"] for r in cfg["receivers"]}
    assert {case["receiver"] for case in ROUTES} == receivers


def test_the_inhibition_cases_cover_every_inhibit_rule():
    rules = alertmanager_dict(AlertmanagerParams(app_url="http://127.0.0.1:8080"))["inhibit_rules"]

    def matches(matchers: list[str], labels: dict) -> bool:
        for m in matchers:
            name, op, value = (m.partition("=~") if "=~" in m else m.partition("="))
            value = value.strip('"')
            got = labels.get(name, "")
            if (op == "=~" and got not in value.split("|")) or (op == "=" and got != value):
                return False
        return True

    for rule in rules:
        covered = [case for case in INHIBITIONS if case["inhibited"] and matches(rule["source_matchers"], case["source"])
                   and matches(rule["target_matchers"], case["target"])]  # fmt: skip
        assert covered, f"no inhibition case exercises {rule}"


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager on the generated config; receivers point at a closed loopback port."""
    binary = require_binary(ALERTMANAGER_BINARY)
    dead = _free_port()  # nothing listens here: deliveries fail quietly, inhibition is unaffected
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(alertmanager_config(AlertmanagerParams(app_url=f"http://127.0.0.1:{dead}", group_wait="1s",
                                                          group_interval="1s")))  # fmt: skip
    listen = f"127.0.0.1:{_free_port()}"
    server = Server("alertmanager", alertmanager_command(binary, cfg, tmp_path / "data", listen), tmp_path / "am.log")
    try:
        server.wait_ready(f"http://{listen}/-/ready")
        yield f"http://{listen}/api/v2"
    finally:
        server.stop()


def test_the_committed_inhibit_rules_are_those_the_real_alertmanager_runs_with():
    committed = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    assert committed == alertmanager_dict(AlertmanagerParams(app_url="http://x"))["inhibit_rules"]


def test_every_inhibition_case_holds_on_a_real_alertmanager(alertmanager):
    now = dt.datetime.now(dt.UTC)
    start, end = now.isoformat(), (now + dt.timedelta(hours=1)).isoformat()
    posted, targets = [], {}
    for i, case in enumerate(INHIBITIONS):
        job = f"case-{i}"
        source = {c.LABEL_JOB: job, **case["source"]}
        target = {c.LABEL_JOB: job, **case["target"]}
        if "job" in case["source"]:
            source[c.LABEL_JOB] = case["source"]["job"] + f"-{i}"
        posted += [{"labels": source, "startsAt": start, "endsAt": end},
                   {"labels": target, "startsAt": start, "endsAt": end}]  # fmt: skip
        targets[job] = (case, target, source)
    r = requests.post(f"{alertmanager}/alerts", json=posted, timeout=10)
    assert r.status_code == 200, r.text

    def state() -> dict[tuple, dict]:
        got = requests.get(f"{alertmanager}/alerts", timeout=10).json()
        return {tuple(sorted(a["labels"].items())): {**a["status"], "fingerprint": a["fingerprint"]} for a in got}

    deadline = time.monotonic() + 30
    while True:
        st = state()
        wrong = []
        for case, target, source in targets.values():
            status = st.get(tuple(sorted(target.items())))
            by = st.get(tuple(sorted(source.items())), {}).get("fingerprint")
            want = "suppressed" if case["inhibited"] else "active"
            if status is None or status["state"] != want or (case["inhibited"] and status["inhibitedBy"] != [by]):
                wrong.append((case["name"], status))
        if not wrong:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"inhibition cases that do not hold: {wrong}")
        time.sleep(0.5)
    # An inhibiting source is never silenced by the alert it silences (no mutual inhibition).
    for case, _target, source in targets.values():
        if case["inhibited"]:
            assert st[tuple(sorted(source.items()))]["state"] == "active", case["name"]
