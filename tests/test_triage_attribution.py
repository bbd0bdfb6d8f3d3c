"""Root-cause attribution (issue #9): each failed run in exactly one cluster, in any arrival order,
on SQLite and PostgreSQL; recovered failures told apart; every read path counts the same."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from hypermindlabs import conventions as c
from hypermindlabs.config import Settings
from hypermindlabs.ingest import ingest_objects
from hypermindlabs.triage.attribution import root_cause
from hypermindlabs.triage.classify import classify_failure
from hypermindlabs.web import create_app
from tests.conftest import FIXED_NOW_NS

T0 = FIXED_NOW_NS - 2 * 3600 * 10**9
MS = 10**6


# -- the rule, pure -----------------------------------------------------------------------------
def _ev(eid: str, span: str, parent: str | None, status: str, start: int, end: int) -> dict:
    return {"event_id": eid, "span_id": span, "parent_span_id": parent, "status": status,
            "start_ns": start, "end_ns": end}  # fmt: skip


RUN = _ev("run", "r0", None, "error", 0, 100)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([], "run", id="no step failed: the run's own error"),
        pytest.param([_ev("a", "s1", "r0", "ok", 1, 5)], "run", id="only ok steps: the run's own error"),
        pytest.param([_ev("a", "s1", "r0", "error", 1, 5)], "a", id="one failed step is the root cause"),
        pytest.param([_ev("a", "s1", "r0", "error", 1, 5), _ev("b", "s2", "r0", "error", 6, 9)], "b",
                     id="of failed siblings the one that ended last propagated (the earlier was retried)"),
        pytest.param([_ev("a", "s1", "r0", "error", 1, 50), _ev("b", "s2", "s1", "error", 2, 40)], "b",
                     id="a failed step inside a failed step: the deepest on the failing path"),
        pytest.param([_ev("a", "s1", "r0", "ok", 1, 50), _ev("b", "s2", "s1", "error", 2, 40)], "run",
                     id="a failed step under a step that ended ok was recovered: the run's own error"),
        pytest.param([_ev("a", "s1", "r0", "ok", 1, 50), _ev("b", "s2", "s1", "error", 2, 40),
                      _ev("c", "s3", "r0", "error", 51, 60)], "c",
                     id="the recovered failure is skipped, the failure at the run's level counts"),
        pytest.param([_ev("b", "s2", "gone", "error", 2, 40)], "b",
                     id="a step whose parent is not stored counts as the run's child"),
        pytest.param([_ev("b", "s2", "r0", "error", 2, 40), _ev("a", "s1", "r0", "error", 2, 40)], "a",
                     id="a tie on end and start goes to the smaller event id"),
        pytest.param([_ev("a", "s1", "r0", "error", 1, 40), _ev("b", "s2", "r0", "error", 3, 40)], "b",
                     id="a tie on the end goes to the later start"),
    ],
)
def test_the_root_cause_rule(steps: list[dict], expected: str) -> None:
    assert root_cause(RUN, steps)["event_id"] == expected


def test_the_root_cause_does_not_depend_on_the_order_of_the_steps() -> None:
    steps = [_ev("a", "s1", "r0", "error", 1, 50), _ev("b", "s2", "s1", "error", 2, 40),
             _ev("c", "s3", "s1", "error", 3, 40), _ev("d", "s4", "r0", "ok", 51, 60),
             _ev("e", "s5", "r0", "error", 0, 10), _ev("f", "s6", "s4", "error", 52, 55)]  # fmt: skip
    answers = {root_cause(RUN, list(p))["event_id"] for p in itertools.permutations(steps)}
    assert answers == {"c"}


def test_a_run_that_ended_ok_has_no_root_cause_to_attribute() -> None:
    ok = {**RUN, "status": "ok"}
    assert root_cause(ok, [_ev("a", "s1", "r0", "error", 1, 5)]) is ok


# -- in the store ---------------------------------------------------------------------------------
TIMEOUT = {"type": "ReadTimeout", "message": "HTTPSConnectionPool(host='crm.internal', port=443): "
           "Read timed out. (read timeout=30)"}  # fmt: skip
WRAPPED = {"type": "AgentError", "message": "agent run failed: tool crm_update raised ReadTimeout: "
           "HTTPSConnectionPool(host='crm.internal', port=443): Read timed out. (read timeout=30)"}  # fmt: skip


def _tool_timeout_run(run_id: str, start: int) -> tuple[dict, dict]:
    run = {"run_id": run_id, "kind": "run", "span_id": "aaaaaaaaaaaaaaaa", "project": "support", "model": "gpt-4o",
           "scenario": "refund", "start_time": start, "duration_ms": 31_000, "status": "error", "error": WRAPPED,
           "tags": {"release": "2.4.0", "env": "prod"}}  # fmt: skip
    step = {"run_id": run_id, "kind": "tool", "tool": "crm_update", "span_id": "bbbbbbbbbbbbbbbb",
            "parent_span_id": "aaaaaaaaaaaaaaaa", "start_time": start + 100 * MS, "duration_ms": 30_000,
            "status": "error", "error": TIMEOUT}  # fmt: skip
    return run, step


TOOL_CLUSTER = classify_failure(kind="tool", error_type=TIMEOUT["type"], error_message=TIMEOUT["message"],
                                tool="crm_update").cluster_id  # fmt: skip
OWN_CLUSTER = classify_failure(kind="run", error_type=WRAPPED["type"], error_message=WRAPPED["message"],
                               model="gpt-4o").cluster_id  # fmt: skip


def _client(pipeline):
    return create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: FIXED_NOW_NS).test_client()


def _window() -> str:
    return f"from={(T0 - 3600 * 10**9) // MS}&to={FIXED_NOW_NS // MS}"


def _assert_one_cluster_everywhere(client, run_ids: list[str]) -> None:
    """Clusters API, run list by cluster, metrics API error classes: the tool timeout's, once."""
    body = client.get(f"/api/v1/failures/clusters?{_window()}").get_json()
    assert body["failed_runs"] == len(run_ids)
    by_id = {x["cluster_id"]: x for x in body["clusters"]}
    assert set(by_id) == {TOOL_CLUSTER}, [x["label"] for x in body["clusters"]]
    cl = by_id[TOOL_CLUSTER]
    assert (cl["failure_class"], cl["failed_runs"], cl["recovered_runs"], cl["failed_steps"]) == (
        "tool_timeout", len(run_ids), 0, len(run_ids))
    assert cl["count"] == cl["failed_runs"] and cl["share_of_failed_runs"] == 1.0
    listed = client.get(cl["runs_url"] + "&limit=1000").get_json()["runs"]
    assert sorted(r["run_id"] for r in listed) == sorted(run_ids)
    assert all(r["failure_class"] == "tool_timeout" and r["cluster_id"] == TOOL_CLUSTER for r in listed)
    own = client.get(f"/api/v1/runs?cluster={OWN_CLUSTER}&{_window()}").get_json()["runs"]
    assert own == []
    summary = client.get(f"/api/v1/metrics/summary?{_window()}").get_json()["rows"][0]
    assert [(e["error_class"], e["count"]) for e in summary["error_classes"]] == [("tool_timeout", len(run_ids))]
    # /metrics is served from the store: the run was retracted from any earlier attribution
    assert _prom_failures(client) == {("tool_timeout", TOOL_CLUSTER): len(run_ids)}


def _prom_failures(client) -> dict[tuple[str, str], int]:
    """hypermind_agent_run_failures_total from /metrics, by (failure_class, cluster), zeros left out."""
    prom: dict[tuple[str, str], int] = {}
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(c.PROM_FAILURES + "_total{") or line.startswith(c.PROM_FAILURES + "{"):
            labels, value = line.rsplit(" ", 1)
            parts = dict(p.split("=", 1) for p in labels[labels.index("{") + 1 : -1].split(","))
            key = (parts[c.ATTR_FAILURE_CLASS].strip('"'), parts[c.ATTR_CLUSTER].strip('"'))
            prom[key] = prom.get(key, 0) + int(float(value))
    return {key: n for key, n in prom.items() if n}


ORDERS = {
    "run and step in one batch, run first": lambda run, step: [[run, step]],
    "run and step in one batch, step first": lambda run, step: [[step, run]],
    "run first, step in a later batch": lambda run, step: [[run], [step]],
    "step first, run in a later batch": lambda run, step: [[step], [run]],
}


@pytest.mark.parametrize("order", list(ORDERS))
def test_a_tool_timeout_wrapped_by_the_run_error_is_one_cluster_in_any_arrival_order(pipeline, order):
    run, step = _tool_timeout_run("r-1", T0)
    for batch in ORDERS[order](run, step):
        assert ingest_objects(pipeline.store, batch).accepted == len(batch)
    _assert_one_cluster_everywhere(_client(pipeline), ["r-1"])


@pytest.mark.parametrize("first", ["run", "step"])
def test_the_attribution_holds_across_a_restart_between_the_run_and_its_step(make_pipeline, first):
    run, step = _tool_timeout_run("r-1", T0)
    before = make_pipeline()
    ingest_objects(before.store, [run if first == "run" else step])
    before.close()
    after = make_pipeline()  # a new process on the same database
    ingest_objects(after.store, [step if first == "run" else run])
    _assert_one_cluster_everywhere(_client(after), ["r-1"])


def test_many_runs_shuffled_across_batches_count_once_each_and_rollups_equal_a_rebuild(pipeline):
    from hypermindlabs.rollups import rebuild_rollups
    from tests.test_rollups import snapshot

    evs = [e for i in range(40) for e in _tool_timeout_run(f"r-{i:02d}", T0 + i * 10**9)]
    random.Random(3).shuffle(evs)
    store = pipeline.store
    for i in range(0, len(evs), 7):
        ingest_objects(store, evs[i : i + 7])
    _assert_one_cluster_everywhere(_client(pipeline), [f"r-{i:02d}" for i in range(40)])
    incremental = snapshot(store)
    rebuild_rollups(store)
    assert snapshot(store) == incremental


def test_a_run_that_recovered_from_a_failed_step_counts_as_recovered_not_failed(pipeline):
    run, step = _tool_timeout_run("r-ok", T0)
    run = {**run, "status": "ok", "error": None}
    run.pop("error")
    retry = {**step, "span_id": "cccccccccccccccc", "start_time": T0 + 31_000 * MS, "duration_ms": 200,
             "status": "ok"}  # fmt: skip
    retry.pop("error")
    failed_run, failed_step = _tool_timeout_run("r-bad", T0 + 60 * 10**9)
    ingest_objects(pipeline.store, [step, retry, run, failed_step, failed_run])
    client = _client(pipeline)
    body = client.get(f"/api/v1/failures/clusters?{_window()}").get_json()
    (cl,) = body["clusters"]
    assert (cl["failed_runs"], cl["recovered_runs"], cl["failed_steps"]) == (1, 1, 2)
    assert body["failed_runs"] == 1 and body["recovered_runs"] == 1 and cl["share_of_failed_runs"] == 1.0
    assert [r["run_id"] for r in client.get(cl["runs_url"]).get_json()["runs"]] == ["r-bad"]
    assert [r["run_id"] for r in client.get(cl["recovered_runs_url"]).get_json()["runs"]] == ["r-ok"]
    assert sum(x["failed_runs"] for x in cl["trend_points"]) == sum(cl["trend"]) == 1
    assert sum(x["recovered_runs"] for x in cl["trend_points"]) == 1
    summary = client.get(f"/api/v1/metrics/summary?{_window()}").get_json()["rows"][0]
    assert summary["count"] == 2
    assert [(e["error_class"], e["count"]) for e in summary["error_classes"]] == [("tool_timeout", 1)]
    assert _prom_failures(client) == {("tool_timeout", TOOL_CLUSTER): 1}  # the recovered run is no failure


def test_every_read_path_agrees_with_prometheus_metrics_when_runs_arrive_whole(pipeline):
    """Clusters API, runs by cluster, metrics API error classes and /metrics: the same counts."""
    rng = random.Random(11)
    evs: list[dict] = []
    for i in range(30):
        run, step = _tool_timeout_run(f"t-{i}", T0 + i * 10**9)
        kind = rng.choice(["timeout", "own", "ok"])
        if kind == "own":
            run = {**run, "error": {"type": "RateLimitError", "message": "Error code: 429 - rate_limit_exceeded"}}
            step = {**step, "status": "ok"}
            step.pop("error")
        elif kind == "ok":
            run = {**run, "status": "ok"}
            run.pop("error")
        evs += [step, run]
    client = _client(pipeline)
    for i in range(0, len(evs), 10):  # through the API, so this process's exporter sees every event
        assert client.post("/api/v1/events", json=evs[i : i + 10]).status_code == 200
    body = client.get(f"/api/v1/failures/clusters?{_window()}").get_json()
    assert sum(x["share_of_failed_runs"] for x in body["clusters"]) <= 1.0 + 1e-9
    api = {(x["failure_class"], x["cluster_id"]): x["failed_runs"] for x in body["clusters"] if x["failed_runs"]}
    assert sum(api.values()) == body["failed_runs"]
    for (_, cid), n in api.items():
        listed = client.get(f"/api/v1/runs?cluster={cid}&status=error&{_window()}&limit=1000").get_json()["runs"]
        assert len(listed) == n
    summary = client.get(f"/api/v1/metrics/summary?{_window()}").get_json()["rows"][0]
    by_class: dict[str, int] = {}
    for (cls, _), n in api.items():
        by_class[cls] = by_class.get(cls, 0) + n
    assert {e["error_class"]: e["count"] for e in summary["error_classes"]} == by_class
    assert _prom_failures(client) == api


# -- on the demo ----------------------------------------------------------------------------------
DEMO_END = datetime(2026, 3, 4, 18, 0, tzinfo=UTC)  # on the hour; the crm_update bursts: 13-16 h UTC
DEMO_DAYS = 4


@pytest.fixture(scope="module")
def demo_client(tmp_path_factory):
    """Four days of the demo workload (seed 7), with its crm_update timeout bursts on the last three."""
    from hypermindlabs.demo.load import load_demo
    from tests.conftest import open_pipeline

    pipeline = open_pipeline(f"sqlite:///{tmp_path_factory.mktemp('triage_demo') / 'demo.db'}")
    result = load_demo(pipeline.store, seed=7, days=DEMO_DAYS, runs_per_day=600, end=DEMO_END, progress=False)
    assert not result.rejected
    now_ns = int(DEMO_END.timestamp()) * 10**9
    yield create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: now_ns).test_client()
    pipeline.close()


def _runs(client, query: str) -> list[dict]:
    runs: list[dict] = []
    cursor = ""
    while True:
        body = client.get(f"/api/v1/runs?{query}&limit=1000{cursor}").get_json()
        runs += body["runs"]
        if not body.get("next_cursor"):
            return runs
        cursor = f"&cursor={body['next_cursor']}"


def test_on_the_demo_every_failed_run_is_in_exactly_one_cluster_and_the_shares_sum_to_one(demo_client):
    window = f"from=now-{DEMO_DAYS}d"
    body = demo_client.get(f"/api/v1/failures/clusters?{window}&limit=1000&min_runs=0").get_json()
    assert body["clusters_total"] == len(body["clusters"]) and body["failed_runs"] > 100
    per_cluster = {x["cluster_id"]: x["failed_runs"] for x in body["clusters"] if x["failed_runs"]}
    assert sum(per_cluster.values()) == body["failed_runs"]
    assert sum(x["share_of_failed_runs"] for x in body["clusters"]) == pytest.approx(1.0, abs=1e-9)
    failed = _runs(demo_client, f"status=error&{window}")
    assert len(failed) == len({r["run_id"] for r in failed}) == body["failed_runs"]
    counted: dict[str, int] = {}
    for r in failed:
        counted[r["cluster_id"]] = counted.get(r["cluster_id"], 0) + 1
    assert counted == per_cluster  # each failed run listed once, under the cluster that counts it


def test_on_the_demo_the_crm_update_timeout_burst_is_one_cluster(demo_client):
    body = demo_client.get(f"/api/v1/failures/clusters?from=now-{DEMO_DAYS}d&limit=12").get_json()
    rows = [x for x in body["clusters"] if x["failure_class"] == "tool_timeout" and "crm_update" in x["label"]]
    assert len(rows) == 1, [x["label"] for x in body["clusters"]]  # was 4-5 of the top 12 rows before #9
    burst = rows[0]
    in_bursts: set[str] = set()
    for back in range(3):  # the burst hours of the last three days
        start = DEMO_END.replace(hour=13) - timedelta(days=back)
        window = f"from={int(start.timestamp() * 1000)}&to={int((start + timedelta(hours=3)).timestamp() * 1000)}"
        runs = _runs(demo_client, f"tool=crm_update&status=error&error_class=tool_timeout&{window}")
        assert runs, f"no burst at {start}"
        in_bursts |= {r["cluster_id"] for r in runs}
    assert in_bursts == {burst["cluster_id"]}
    assert burst["failed_runs"] >= 20 and burst["share_of_failed_runs"] <= 1
