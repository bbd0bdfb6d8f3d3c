"""kill -9 during sustained ingest (issue #15 acceptance): a real ``hypermind-obs serve`` process takes
HTTP batches from a client thread, is killed with SIGKILL mid-stream and restarted on the same
database. Every acknowledged event is stored, and the rollups and the exported series (/metrics)
the server maintained incrementally equal what ``hypermind-obs rebuild-rollups`` recomputes from
the raw events, cell by cell and row by row. SQLite file and PostgreSQL schema."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from hypermindlabs.config import Settings
from hypermindlabs.store.schema import events, export_series
from hypermindlabs.wiring import build_pipeline
from tests.test_rollups import DAY, build_runs, snapshot, to_events

CLI = [sys.executable, "-m", "hypermindlabs.cli.main"]
BATCH_RUNS = 15


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(url: str) -> dict[str, str]:
    off = {f"HYPERMIND_RATE_LIMIT_{g}_PER_{p}": "off" for g in ("INGEST", "READ") for p in ("TOKEN", "ADDRESS")}
    return {**os.environ, "HYPERMIND_DATABASE_URL": url, **off}


def _start(url: str, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=_env(url), stdout=log.open("a"),
                            stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:  # noqa: S310
                if r.status == 200:
                    return proc
        except OSError:
            pass
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(log.read_text()[-3000:])


class Writer(threading.Thread):
    """Posts batches of runs (children and run events, shuffled) until stopped; a batch is re-sent
    until acknowledged, as an exporter retries. Records each acknowledged event_id."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.acknowledged: set[str] = set()
        self.acked_batches = 0
        self.failed_attempts = 0
        self.lock = threading.Lock()

    def run(self) -> None:
        t0 = time.time_ns() - DAY // 2
        i = 0
        while not self.stop.is_set():
            evs = to_events(build_runs(1000 + i, BATCH_RUNS, t0, DAY // 4, prefix=f"k{i}-"), seed=i)
            random.Random(i).shuffle(evs)
            body = json.dumps(evs).encode()
            while not self.stop.is_set():
                req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1/events", data=body,
                                             headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - loopback test server
                        answer = json.loads(r.read())
                    assert answer["accepted"] + answer["duplicates"] == len(evs) and not answer["rejected"], answer
                    with self.lock:
                        self.acknowledged |= {e["event_id"] for e in evs}
                        self.acked_batches += 1
                    break
                except (OSError, urllib.error.HTTPError):
                    with self.lock:
                        self.failed_attempts += 1
                    time.sleep(0.05)
            i += 1

    def wait_batches(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.acked_batches < n:
            assert time.monotonic() < deadline, f"only {self.acked_batches} batches acknowledged"
            time.sleep(0.02)


def _exported(store) -> list[tuple]:
    with store.engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(sa.select(export_series)))


def test_kill_9_during_ingest_loses_no_acknowledged_event_and_rollups_equal_a_rebuild(database, tmp_path):
    port = _free_port()
    log = tmp_path / "serve.log"
    proc = _start(database, port, log)
    writer = Writer(port)
    writer.start()
    try:
        writer.wait_batches(8)
        # Kill while a batch is (most likely) in flight: the writer posts back to back.
        time.sleep(random.Random(7).uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = writer.acked_batches
        time.sleep(0.5)  # the writer meets a refused port meanwhile
        proc = _start(database, port, log)
        writer.wait_batches(killed_at + 8)
    finally:
        writer.stop.set()
        writer.join(60)
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert writer.failed_attempts >= 1, "the kill did not interrupt the writer"

    pipeline = build_pipeline(Settings(database_url=database))
    try:
        store = pipeline.store
        with store.engine.connect() as c:
            stored = {r[0] for r in c.execute(sa.select(events.c.event_id))}
        assert writer.acknowledged <= stored, f"{len(writer.acknowledged - stored)} acknowledged events lost"
        # Nothing beyond the batches sent (an unacknowledged batch may be stored: it was re-sent).
        assert len(stored) == store.count_events()
        incremental_rollups, incremental_export = snapshot(store), _exported(store)
        assert incremental_rollups[0] and incremental_export
    finally:
        pipeline.close()

    done = subprocess.run([*CLI, "rebuild-rollups", "--database-url", database, "-q"], env=_env(database),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    pipeline = build_pipeline(Settings(database_url=database))
    try:
        rebuilt_rollups, rebuilt_export = snapshot(pipeline.store), _exported(pipeline.store)
    finally:
        pipeline.close()
    for name, inc, reb in zip(("cells", "slices", "members"), incremental_rollups, rebuilt_rollups, strict=True):
        assert inc == reb, f"rollup {name} differ from a rebuild: {len(set(inc) ^ set(reb))} rows"
    assert incremental_export == rebuilt_export, f"{len(set(incremental_export) ^ set(rebuilt_export))} rows differ"
