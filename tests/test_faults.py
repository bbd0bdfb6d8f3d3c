"""The database goes away or is locked: 503 with Retry-After (never 500), /healthz says why, recovery
without a restart, nothing acknowledged lost and nothing stored twice.

PostgreSQL: a private instance of the test's own (tests/pg_instance.py) stopped and started under the
running app. SQLite: another process holds the write lock past the app's busy timeout.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from hypermindlabs.wiring import build_pipeline


def _run(i: int, start: str = "2026-01-01T00:00:00Z") -> dict:
    return {
        "kind": "run",
        "run_id": f"fault-{i}",
        "event_id": f"fault-ev-{i}",
        "project": "p",
        "status": "ok",
        "start_time": start,
        "end_time": "2026-01-01T00:00:02Z",
    }


def _assert_unavailable(r) -> None:
    assert r.status_code == 503, r.get_data(as_text=True)
    assert int(r.headers["Retry-After"]) == 7
    body = r.get_json()
    assert body["field"] == "database" and body["error"]


def test_postgresql_stopped_answers_503_with_retry_after_and_recovers_without_restart(private_pg):
    settings = Settings(database_url=private_pg.url, db_retry_after_s=7)
    pipeline = build_pipeline(settings)
    try:
        c = create_app(settings, pipeline=pipeline).test_client()
        assert c.post("/api/v1/events", json=[_run(0)]).status_code == 200
        acknowledged = {"fault-0"}

        private_pg.stop()
        _assert_unavailable(c.post("/api/v1/events", json=[_run(1)]))
        _assert_unavailable(c.get("/api/v1/runs"))
        _assert_unavailable(c.get("/api/v1/metrics/summary?project=p"))
        health = c.get("/healthz")
        _assert_unavailable(health)
        assert health.get_json()["status"] == "error"
        assert "database unavailable" in health.get_json()["error"]

        private_pg.start()  # the same app, no restart
        assert c.get("/healthz").get_json() == {"status": "ok"}
        r = c.post("/api/v1/events", json=[_run(1), _run(2)])
        assert r.status_code == 200 and r.get_json()["accepted"] == 2
        acknowledged |= {"fault-1", "fault-2"}
        again = c.post("/api/v1/events", json=[_run(1)])  # the client's retry of the refused batch
        assert again.get_json() == {"accepted": 0, "duplicates": 1, "rejected": []}

        runs = c.get("/api/v1/runs?limit=100").get_json()["runs"]
        assert {r["run_id"] for r in runs} == acknowledged
        assert pipeline.store.count_events() == 3
    finally:
        pipeline.close()


_HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # the write lock, held until told to let go
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    print("released", flush=True)
    """
)


def test_sqlite_locked_past_the_busy_timeout_answers_503_then_recovers_with_nothing_lost(tmp_path):
    db = tmp_path / "events.db"
    settings = Settings(database_url=f"sqlite:///{db}", db_busy_timeout_ms=300, db_retry_after_s=7)
    pipeline = build_pipeline(settings)
    holder = None
    try:
        c = create_app(settings, pipeline=pipeline).test_client()
        assert c.post("/api/v1/events", json=[_run(0)]).status_code == 200

        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"

        _assert_unavailable(c.post("/api/v1/events", json=[_run(1)]))
        otlp = c.post("/v1/traces", json={"resourceSpans": []})
        assert otlp.status_code in (200, 503)  # an empty export may need no write at all
        # Reads go on under WAL while another process writes; /healthz says writes are failing.
        assert [r["run_id"] for r in c.get("/api/v1/runs").get_json()["runs"]] == ["fault-0"]
        health = c.get("/healthz")
        assert health.status_code == 200
        assert health.get_json()["status"] == "degraded"
        assert "locked" in health.get_json()["error"]

        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        holder.wait(timeout=10)

        r = c.post("/api/v1/events", json=[_run(1), _run(2)])
        assert r.status_code == 200 and r.get_json()["accepted"] == 2
        assert c.get("/healthz").get_json() == {"status": "ok"}
        assert {r["run_id"] for r in c.get("/api/v1/runs").get_json()["runs"]} == {"fault-0", "fault-1", "fault-2"}
        assert pipeline.store.count_events() == 3
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
        pipeline.close()
