"""Triage against the store, on SQLite and PostgreSQL: classification at ingest, stable clusters
in any arrival order, run attribution, the clusters API with exact drill-down, reclassify."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

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


def test_a_failed_run_is_classified_from_its_own_error(store):
    t = FIXED_NOW_NS - 3600 * 10**9
    ingest_objects(store, [{"run_id": "r", "kind": "run", "start_time": t, "duration_ms": 40000, "status": "error",
                            "error": {"type": "RateLimitError", "message": "Error code: 429 - rate_limit_exceeded"}}])  # fmt: skip
    assert store.get_run("r")["run"]["failure_class"] == "rate_limit"


def test_the_clusters_api_counts_exactly_the_runs_its_drill_down_lists(client, store, demo_events):
    ingest_objects(store, demo_events)
    r = client.get("/api/v1/failures/clusters?from=now-2d&buckets=12")
    assert r.status_code == 200
    body = r.get_json()
    assert body["clusters"], "the demo has failures in the last two days"
    for c in body["clusters"][:8]:
        listed = client.get(c["runs_url"] + "&limit=1000").get_json()["runs"]
        assert len(listed) == c["count"], c["label"]
        assert set(c["sample_run_ids"]) <= {x["run_id"] for x in listed}
        assert sum(c["trend"]) >= c["count"] and len(c["trend"]) == 12
        assert c["hint"] and c["label"].startswith(c["failure_class"])
        assert c["state"] in ("new", "rising", "steady", "declining")
    counts = [c["count"] for c in body["clusters"]]
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
    (c,) = [c for c in body["clusters"] if c["failure_class"] != "unknown"]  # the runs carry no error of their own
    assert (c["count"], c["state"], c["failure_class"]) == (6, "new", "tool_schema_mismatch")
    assert c["concentration"]["release"] == [{"value": "1.4.2", "runs": 6, "share": 1.0}]
    assert c["share_of_failed_runs"] == 1.0 and c["affected"]["tools"] == {"crm_update": 6}


@pytest.mark.parametrize("query, field", [("from=soon", "from"), ("buckets=0", "buckets"), ("bogus=1", "bogus")])
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
    assert examined == changed == sum(1 for v in expected.values() if v[1])
    assert _clusters(store) == expected
    assert reclassify(store) == (examined, 0)
