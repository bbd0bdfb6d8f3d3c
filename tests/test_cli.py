"""The command line: ingest files with a final report, demo loading, serve's safety checks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import requests

from hypermindlabs.cli import main
from hypermindlabs.store import EventStore

T0 = 1_767_225_600


def _events(n: int):
    return [
        {"run_id": f"r{i}", "kind": "run", "start_time": T0 + i, "duration_ms": 5, "project": "p"} for i in range(n)
    ]


def test_ingest_reports_accepted_duplicates_and_rejected_with_the_first_errors(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    nd = tmp_path / "events.ndjson"
    lines = [orjson.dumps(e).decode() for e in _events(20)]
    lines.insert(5, '{"run_id": "bad", "kind": "agent", "start_time": 1767225600, "duration_ms": 1}')
    lines.insert(9, "{oops")
    nd.write_text("\n".join(lines) + "\n")
    arr = tmp_path / "events.json"
    arr.write_text(json.dumps(_events(25)))  # 20 repeats + 5 new
    code = main(["ingest", "--database-url", db, "-q", "--batch-size", "7", str(nd), str(arr)])
    out = capsys.readouterr().out
    assert code == 1  # some events were rejected
    assert "ingested 47 events: 25 accepted, 20 duplicates, 2 rejected" in out
    assert f"{nd} #6: kind:" in out and f"{nd} #10: $:" in out
    store = EventStore.open(db)
    assert store.count_events() == 25
    store.close()


def test_ingest_of_a_clean_file_exits_0_and_a_missing_file_exits_2(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    f = tmp_path / "one.json"
    f.write_text(json.dumps(_events(1)[0], indent=2))  # a pretty-printed single object
    assert main(["ingest", "--database-url", db, "-q", str(f)]) == 0
    assert "1 accepted" in capsys.readouterr().out
    assert main(["ingest", "--database-url", db, "-q", str(tmp_path / "nope.json")]) == 2


def test_demo_loads_once_into_an_empty_database(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    args = ["demo", "--database-url", db, "--no-serve", "-q", "--days", "2", "--runs-per-day", "60"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 rejected" in out
    store = EventStore.open(db)
    n = store.count_events()
    assert n > 120
    assert main(args) == 0
    assert "already holds" in capsys.readouterr().out
    assert store.count_events() == n
    store.close()


def test_serve_refuses_to_bind_beyond_loopback_without_a_token(tmp_path, capsys):
    code = main(["serve", "--database-url", f"sqlite:///{tmp_path / 's.db'}", "--host", "0.0.0.0", "--port", "1"])
    assert code == 2
    assert "HYPERMIND_API_TOKEN" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_over_real_http(tmp_path):
    port = _free_port()
    exe = Path(sys.executable).with_name("hypermind-obs")
    proc = subprocess.Popen(
        [str(exe), "serve", "--database-url", f"sqlite:///{tmp_path / 'http.db'}", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        # Start-up is imports plus migrations: seconds on a quiet machine, far more on a loaded CI box.
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {proc.stdout.read().decode()[-2000:] if proc.poll() is not None else 'timeout'}")
            time.sleep(0.1)
        body = "\n".join(orjson.dumps(e).decode() for e in _events(3))
        r = requests.post(
            f"{base}/api/v1/events", data=body, headers={"Content-Type": "application/x-ndjson"}, timeout=10
        )
        assert r.status_code == 200 and r.json()["accepted"] == 3
        assert len(requests.get(f"{base}/api/v1/runs", timeout=10).json()["runs"]) == 3
        assert requests.get(f"{base}/", timeout=10, allow_redirects=True).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
