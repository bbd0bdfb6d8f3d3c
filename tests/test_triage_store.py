"""Triage against the store, on SQLite and PostgreSQL: classification at ingest, stable clusters
in any arrival order, run attribution, the clusters API with exact drill-down, reclassify."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, update

from hypermindlabs.core.filters import Filters
from hypermindlabs.demo import demo_spec, generate_events
from hypermindlabs.ingest import ingest_objects
from hypermindlabs.store.schema import events
from hypermindlabs.triage.classify import FAILURE_CLASSES
from hypermindlabs.triage.report import reclassify
from tests.conftest import FIXED_NOW_NS

END = datetime.fromtimestamp(FIXED_NOW_NS // 10**9, UTC)


@pytest.fixture(scope="module")
def demo_events() -> list[dict]:
    spec = demo_spec(seed=3, end=END, days=3)
    return list(generate_events(spec, runs_per_day=250))


def _clusters(store) -> dict[str, tuple[str | None, str | None]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(events.c.event_id, events.c.failure_class, events.c.cluster_id))
        return {r.event_id: (r.failure_class, r.cluster_id) for r in rows}


def test_failures_are_classified_at_ingest_and_every_failed_event_gets_a_cluster(store, demo_events):
    ingest_objects(store, demo_events)
    got = _clusters(store)
    failed = [e for e in demo_events if e.get("status") == "error"]
    assert len(failed) > 50
    with store.engine.connect() as conn:
        by_id = {r.event_id: r for r in conn.execute(select(events.c.event_id, events.c.status))}
    for eid, (cls, cid) in got.items():
        if by_id[eid].status == "error":
            assert cls in FAILURE_CLASSES and cid and len(cid) == 16
        else:
            assert (cls, cid) == (None, None)


def test_cluster_ids_do_not_depend_on_order_batching_or_arrival_of_the_run(make_store, demo_events, tmp_path):
    reference = make_store()
    ingest_objects(reference, demo_events)
    expected = _clusters(reference)

    # Shuffled, in small batches: children often arrive in a batch before their run, or after it.
    from tests.conftest import open_pipeline

    other = open_pipeline(f"sqlite:///{tmp_path / 'shuffled.db'}").store
    shuffled = list(demo_events)
    random.Random(5).shuffle(shuffled)
    for i in range(0, len(shuffled), 37):
        ingest_objects(other, shuffled[i : i + 37])
    assert _clusters(other) == expected
    other.close()


def test_a_failed_run_without_a_failed_step_is_classified_from_its_own_error(store):
    t = FIXED_NOW_NS - 3600 * 10**9
    ingest_objects(store, [{"run_id": "r", "kind": "run", "start_time": t, "duration_ms": 40000, "status": "error",
                            "error": {"type": "RateLimitError", "message": "Error code: 429 - rate_limit_exceeded"}}])  # fmt: skip
    assert store.get_run("r")["run"]["failure_class"] == "rate_limit"


def test_the_clusters_api_counts_exactly_the_runs_its_drill_down_lists(client, store, demo_events):
    ingest_objects(store, demo_events)
    r = client.get("/api/v1/failures/clusters?from=now-2d&buckets=12&limit=1000")
    assert r.status_code == 200
    body = r.get_json()
    assert body["clusters"], "the demo has failures in the last two days"
    assert sum(c["failed_runs"] for c in body["clusters"]) == body["failed_runs"]  # one cluster per failed run
    assert sum(c["share_of_failed_runs"] for c in body["clusters"]) == pytest.approx(1.0)
    every_failed = client.get(f"/api/v1/runs?status=error&from={body['from_ms']}&to={body['to_ms']}&limit=1000")
    assert len(every_failed.get_json()["runs"]) == body["failed_runs"]
    for c in body["clusters"][:8]:
        listed = client.get(c["runs_url"] + "&limit=1000").get_json()["runs"]
        assert len(listed) == c["count"] == c["failed_runs"], c["label"]
        assert all(x["status"] == "error" and x["cluster_id"] == c["cluster_id"] for x in listed)
        recovered = client.get(c["recovered_runs_url"] + "&limit=1000").get_json()["runs"]
        assert len(recovered) == c["recovered_runs"] and all(x["status"] == "ok" for x in recovered)
        assert set(c["sample_run_ids"]) <= {x["run_id"] for x in listed + recovered}
        assert sum(c["trend"]) == c["failed_runs"] and len(c["trend"]) == 12
        assert sum(p["recovered_runs"] for p in c["trend_points"]) == c["recovered_runs"]
        assert c["hint"] and c["label"].startswith(c["failure_class"])
        assert c["state"] in ("new", "rising", "steady", "declining")
    counts = [(c["failed_runs"], c["recovered_runs"]) for c in body["clusters"]]
    assert counts == sorted(counts, reverse=True)


def test_the_clusters_api_applies_the_common_filters(client, store, demo_events):
    ingest_objects(store, demo_events)
    all_ = client.get("/api/v1/failures/clusters?from=now-3d").get_json()
    prod = client.get("/api/v1/failures/clusters?from=now-3d&tag.env=staging").get_json()
    assert sum(c["count"] for c in prod["clusters"]) < sum(c["count"] for c in all_["clusters"])
    for c in prod["clusters"][:5]:
        runs = client.get(c["runs_url"] + "&limit=1000").get_json()["runs"]
        assert all(x["tags"].get("env") == "staging" for x in runs)


def test_a_new_cluster_is_reported_new_and_its_release_concentration_shown(client, store):
    t = FIXED_NOW_NS - 2 * 3600 * 10**9
    batch = []
    for i in range(6):
        batch.append(
            {
                "run_id": f"n{i}",
                "kind": "tool",
                "tool": "crm_update",
                "start_time": t + i * 10**9 + 1,
                "duration_ms": 5,
                "status": "error",
                "error": {"type": "ValidationError", "message": f"'account_{i}' is a required property"},
            }
        )
        batch.append({"run_id": f"n{i}", "kind": "run", "start_time": t + i * 10**9, "duration_ms": 10,
                      "status": "error", "tags": {"release": "1.4.2", "env": "prod"}})  # fmt: skip
    ingest_objects(store, batch)
    body = client.get("/api/v1/failures/clusters").get_json()
    (c,) = body["clusters"]  # the runs carry no error of their own: their failed step is the root cause
    assert (c["count"], c["state"], c["failure_class"]) == (6, "new", "tool_schema_mismatch")
    assert c["concentration"]["release"] == [{"value": "1.4.2", "runs": 6, "share": 1.0}]
    assert c["share_of_failed_runs"] == 1.0 and c["affected"]["tools"] == {"crm_update": 6}


@pytest.mark.parametrize(
    "query, field",
    [("from=soon", "from"), ("buckets=0", "buckets"), ("bogus=1", "bogus"), ("sort=loudest", "sort"),
     ("limit=0", "limit"), ("min_runs=-1", "min_runs"), ("step=5s", "step"), ("from=now-30d&step=1m", "step")],
)  # fmt: skip
def test_bad_cluster_queries_answer_400_naming_the_parameter(client, query, field):
    r = client.get(f"/api/v1/failures/clusters?{query}")
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_reclassify_repairs_stale_labels(store, demo_events):
    ingest_objects(store, demo_events)
    expected = _clusters(store)
    with store.engine.begin() as conn:
        conn.execute(
            update(events).where(events.c.status == "error").values(cluster_id="stale", failure_class="unknown")
        )
    examined, changed = reclassify(store)
    assert examined == changed == sum(1 for v in expected.values() if v[1])  # steps and failed runs
    assert _clusters(store) == expected
    assert reclassify(store) == (examined, 0)


def _hourly_failures(hours: int) -> list[dict]:
    out = []
    for h in range(hours):
        t = FIXED_NOW_NS - (h + 1) * 3600 * 10**9 + 60 * 10**9
        for i in range(h % 3 + 1):
            rid = f"h{h}-{i}"
            out.append({"run_id": rid, "kind": "run", "start_time": t + i * 10**9, "duration_ms": 10, "status": "error",
                        "error": {"type": "RateLimitError", "message": "Error code: 429 - rate_limit_exceeded"}})  # fmt: skip
    return out


def test_trend_points_carry_their_bucket_start_aligned_to_hours_by_default(client, store):
    ingest_objects(store, _hourly_failures(24))
    body = client.get("/api/v1/failures/clusters?from=now-24h").get_json()
    (c,) = body["clusters"]
    assert body["step_s"] == 3600 and len(c["trend_points"]) == 24
    first = c["trend_points"][0]
    assert first["t"] % 3_600_000 == 0 and first["time"].endswith(":00:00Z")
    assert first["t"] == body["from_ms"] and c["trend"] == [p["failed_runs"] for p in c["trend_points"]]
    assert c["trend"] == [(23 - k) % 3 + 1 for k in range(24)]  # oldest first
    assert c["first_seen_time"] and c["first_seen_ms"] == c["first_seen"] // 10**6


def test_a_week_is_bucketed_by_days_and_the_step_can_be_set(client, store):
    ingest_objects(store, _hourly_failures(24))
    week = client.get("/api/v1/failures/clusters?from=now-7d").get_json()
    assert week["step_s"] == 86400 and all(p["t"] % 86_400_000 == 0 for p in week["clusters"][0]["trend_points"])
    six = client.get("/api/v1/failures/clusters?from=now-24h&step=6h").get_json()
    assert [p["failed_runs"] for p in six["clusters"][0]["trend_points"]] == [12, 12, 12, 12]


def test_limit_min_runs_and_sort_shape_the_cluster_list(client, store):
    t = FIXED_NOW_NS - 3600 * 10**9
    batch = []
    for name, n in (("a", 5), ("b", 2), ("c", 1)):
        for i in range(n):
            batch.append({"run_id": f"{name}{i}", "kind": "run", "start_time": t + i * 10**9, "duration_ms": 5,
                          "status": "error", "error": {"type": "ValueError", "message": f"failure kind {name}"}})  # fmt: skip
    ingest_objects(store, batch)
    everything = client.get("/api/v1/failures/clusters").get_json()
    assert [c["failed_runs"] for c in everything["clusters"]] == [5, 2, 1] and everything["clusters_total"] == 3
    assert [c["failed_runs"] for c in client.get("/api/v1/failures/clusters?limit=2").get_json()["clusters"]] == [5, 2]
    assert [c["failed_runs"] for c in client.get("/api/v1/failures/clusters?min_runs=2").get_json()["clusters"]] == [5, 2]
    growth = client.get("/api/v1/failures/clusters?sort=growth").get_json()["clusters"]
    assert [c["failed_runs"] - c["previous_failed_runs"] for c in growth] == [5, 2, 1]
    newest = client.get("/api/v1/failures/clusters?sort=newest").get_json()["clusters"]
    assert [c["first_seen"] for c in newest] == sorted((c["first_seen"] for c in newest), reverse=True)


def test_the_triage_command_shows_trend_concentration_samples_and_json_the_api_answer(tmp_path, capsys):
    import json
    import time

    from hypermindlabs.cli import main
    from tests.conftest import open_pipeline

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    now = time.time_ns()
    runs = []
    for i in range(4):
        rid = f"cli-{i}"
        t = now - (i + 1) * 3600 * 10**9
        runs.append({"run_id": rid, "kind": "tool", "tool": "crm_update", "start_time": t + 10**6, "duration_ms": 30000,
                     "status": "error", "error": {"type": "ReadTimeout", "message": "Read timed out. (read timeout=30)"}})  # fmt: skip
        runs.append({"run_id": rid, "kind": "run", "start_time": t, "duration_ms": 31000, "status": "error",
                     "error": {"type": "AgentError", "message": "tool failed"},
                     "tags": {"release": "2.4.0", "env": "prod"}})  # fmt: skip
    p = open_pipeline(db)
    ingest_objects(p.store, runs)
    p.close()
    assert main(["triage", "--database-url", db, "--since", "now-24h"]) == 0
    out = capsys.readouterr().out
    assert "4 failed runs and 0 recovered runs" in out and "1 failure clusters" in out
    row = next(line for line in out.splitlines() if "tool_timeout · crm_update" in line)
    assert row.split()[:4] == ["4", "100%", "0", "4"] and any(ch in row for ch in "▁▂▃▄▅▆▇█")
    assert "concentration: release 2.4.0 100%; env prod 100%" in out
    assert "sample runs: cli-0, cli-1, cli-2" in out
    assert main(["triage", "--database-url", db, "--since", "now-24h", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["failed_runs"] == 4 and body["clusters"][0]["failed_runs"] == 4 and body["step_s"] == 3600


def test_the_clusters_report_reads_its_rows_from_indexes_and_tags_by_run_id(store, demo_events):
    # Issue #9: at 1M events the report walked every run's and step's table row, and SQLite took
    # the key-led tag index for the concentration tags (every run's tag of those keys, per chunk).
    ingest_objects(store, demo_events)
    seen: list[tuple[str, tuple]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seen.append((statement, tuple(parameters)))

    sa_event.listen(store.engine, "before_cursor_execute", record)
    try:
        now = FIXED_NOW_NS
        got = store.cluster_rows(Filters(), prev_from_ns=now - 2 * 86400 * 10**9, from_ns=now - 86400 * 10**9,
                                 to_ns=now, tag_keys=("env", "release"))  # fmt: skip
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", record)
    assert got.failed_runs and got.failed_steps
    assert all(x.error_message is None for x in got.failed_steps)  # texts are read for examples only
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL's planner is cost-based; the exact counts are asserted above and in the API tests
    plans = {}
    with store.engine.connect() as conn:
        for statement, parameters in seen:
            plans[statement] = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
    runs = next(p for s, p in plans.items() if "FROM events AS r INDEXED BY" in s and " JOIN " not in s)
    steps = next(p for s, p in plans.items() if "JOIN events AS r INDEXED BY" in s)
    tags = [p for s, p in plans.items() if "FROM run_tags" in s]
    assert any("ix_runs_start_outcome" in line for line in runs), runs
    assert any("ix_runs_start_outcome" in line for line in steps), steps
    assert any("ix_events_failed_cluster" in line for line in steps), steps
    assert tags and all("ix_run_tags_key_value" not in line for plan in tags for line in plan), tags


def test_a_revision_numbered_lower_than_the_one_it_revises_counts_as_applied() -> None:
    # Migration numbers are assigned per area: 0015 revises 0016. Comparing names made a database
    # at 0015 look older than ROLLUPS_REVISION 0016, so every start recomputed its rollups.
    from hypermindlabs.store import schema_includes
    from hypermindlabs.wiring import EXPORT_REVISION, ROLLUPS_REVISION

    assert schema_includes("0015", "0016") and schema_includes("0015", EXPORT_REVISION)
    assert schema_includes("0022", ROLLUPS_REVISION) and not schema_includes("0016", "0015")
    assert schema_includes("0018", "0016") and not schema_includes("0021", ROLLUPS_REVISION)
    assert not schema_includes("0013", ROLLUPS_REVISION) and schema_includes("0013", "0013")
    assert not schema_includes(None, "0001")
