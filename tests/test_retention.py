"""Retention (``hypermind-obs prune``): raw events of old runs go, every aggregate stays.

On SQLite and PostgreSQL: the summary and timeseries answers and ``/metrics`` are byte-identical
before and after a prune, the raw events (and run tags, OTLP state) of the pruned runs are gone,
a drill-down before the watermark says so, an event from before it is refused (it could be a
retry of a pruned one, counted twice), and ``rebuild-rollups`` refuses to erase the history.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from hypermindlabs.cli.main import main
from hypermindlabs.config import Settings
from hypermindlabs.core.events import format_timestamp
from hypermindlabs.core.filters import Filters
from hypermindlabs.ingest import ingest_objects
from hypermindlabs.store.schema import events, otlp_traces, retention, run_tags
from hypermindlabs.web import create_app
from hypermindlabs.wiring import build_pipeline
from tests.conftest import FIXED_NOW_NS
from tests.test_rollups import DAY, HOUR, build_runs, ingest, rebuild_from_scratch, snapshot, to_events

T0 = FIXED_NOW_NS - 4 * DAY
CUTOFF = T0 + 2 * DAY + 7 * HOUR  # not on a bucket edge: a bucket holds pruned and kept runs


def _ms(ns: int) -> str:
    return str(ns // 1_000_000)


#: Aggregate answers over windows before, across and after the cutoff.
AGGREGATES = [
    "/api/v1/metrics/summary?" + urlencode({"from": _ms(T0), "to": _ms(FIXED_NOW_NS)}),
    "/api/v1/metrics/summary?" + urlencode({"from": _ms(T0), "to": _ms(CUTOFF), "group_by": "model"}),
    "/api/v1/metrics/summary?" + urlencode({"from": _ms(T0), "to": _ms(FIXED_NOW_NS), "group_by": "tag.env"}),
    "/api/v1/metrics/summary?" + urlencode({"from": _ms(T0), "to": _ms(FIXED_NOW_NS), "kind": "tool",
                                            "group_by": "tool"}),
    "/api/v1/metrics/timeseries?" + urlencode({"from": _ms(T0), "to": _ms(FIXED_NOW_NS), "step": "1h"}),
    "/api/v1/metrics/timeseries?" + urlencode({"from": _ms(T0 + DAY), "to": _ms(CUTOFF + DAY), "step": "5m",
                                               "group_by": "scenario"}),
]  # fmt: skip


def _answers(client) -> dict[str, bytes]:
    out = {}
    for path in AGGREGATES:
        r = client.get(path)
        assert r.status_code == 200, (path, r.get_data(as_text=True)[:300])
        out[path] = r.data
    for accept in ("text/plain", "application/openmetrics-text; version=1.0.0"):
        r = client.get("/metrics", headers={"Accept": accept})
        assert r.status_code == 200
        out["/metrics " + accept] = r.data
    return out


def _old_runs(runs) -> set[str]:
    return {r.run_id for r in runs if r.start_ns < CUTOFF}


@pytest.fixture
def loaded(pipeline, client):
    runs = build_runs(5, 400, T0, 4 * DAY - HOUR)
    ingest(pipeline.store, to_events(runs, seed=5))
    return runs


def test_prune_deletes_the_old_runs_raw_events_and_every_aggregate_answer_stays_byte_identical(
    pipeline, client, loaded
):
    store = pipeline.store
    old = _old_runs(loaded)
    assert 100 < len(old) < 300
    before = _answers(client)
    cells_before = snapshot(store)
    with store.engine.connect() as c:
        total_before = c.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
        old_events = c.execute(
            sa.select(sa.func.count()).select_from(events).where(events.c.run_id.in_(sorted(old)))
        ).scalar_one()
    plan = store.prune_plan(CUTOFF)
    assert (plan.runs, plan.run_events, plan.orphan_events) == (len(old), old_events, 0)

    seen: list[tuple[int, int]] = []
    result = store.prune(CUTOFF, now_ns=FIXED_NOW_NS, runs_per_transaction=37,
                         progress=lambda d, t: seen.append((d, t)))  # fmt: skip

    assert (result.runs, result.events) == (len(old), old_events)
    assert result.transactions == -(-len(old) // 37) and seen[-1] == (len(old), len(old))
    assert _answers(client) == before, "aggregates and /metrics changed by the prune"
    assert snapshot(store) == cells_before
    with store.engine.connect() as c:
        left = set(c.execute(sa.select(events.c.run_id).distinct()).scalars())
        tagged = set(c.execute(sa.select(run_tags.c.run_id).distinct()).scalars())
        total_after = c.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    assert not left & old and left == {r.run_id for r in loaded} - old
    assert not tagged & old and tagged
    assert total_after == total_before - old_events
    assert store.run_ids(Filters(from_ns=T0, to_ns=CUTOFF)) == []
    mark = store.retention_watermark()
    assert mark is not None and (mark.pruned_before_ns, mark.runs_pruned, mark.events_pruned) == (
        CUTOFF, len(old), old_events)  # fmt: skip


def test_a_drill_down_reaching_before_the_watermark_says_the_runs_were_pruned(pipeline, client, loaded):
    old = sorted(_old_runs(loaded))
    window = {"from": _ms(T0), "to": _ms(FIXED_NOW_NS), "limit": "500"}
    first = client.get("/api/v1/runs?" + urlencode(window)).get_json()
    assert "pruned_before" not in first and {r["run_id"] for r in first["runs"]} >= set(old)
    assert client.get(f"/api/v1/runs/{old[0]}").status_code == 200

    pipeline.store.prune(CUTOFF, now_ns=FIXED_NOW_NS)

    body = client.get("/api/v1/runs?" + urlencode(window)).get_json()
    assert body["pruned_before"] == format_timestamp(CUTOFF)
    assert "pruned" in body["retention_notice"] and "still count" in body["retention_notice"]
    assert {r["run_id"] for r in body["runs"]} == {r.run_id for r in loaded} - set(old)
    before_only = client.get("/api/v1/runs?" + urlencode({"from": _ms(T0), "to": _ms(CUTOFF)})).get_json()
    assert before_only["runs"] == [] and before_only["pruned_before"] == format_timestamp(CUTOFF)
    unbounded = client.get("/api/v1/runs").get_json()  # no from: reaches back past the watermark
    assert unbounded["pruned_before"] == format_timestamp(CUTOFF)
    after = client.get("/api/v1/runs?" + urlencode({"from": _ms(CUTOFF), "to": _ms(FIXED_NOW_NS)})).get_json()
    assert "pruned_before" not in after and after["runs"]
    page = client.get(f"/api/v1/runs/{old[0]}")
    assert page.status_code == 404
    assert page.get_json()["pruned_before"] == format_timestamp(CUTOFF) and "pruned" in page.get_json()["error"]


def test_an_event_from_before_the_watermark_is_refused_so_a_retry_of_a_pruned_one_never_counts_twice(
    pipeline, client, loaded
):
    pipeline.store.prune(CUTOFF, now_ns=FIXED_NOW_NS)
    before = _answers(client)
    old_run = next(r for r in loaded if r.start_ns < CUTOFF and r.steps)
    retry = to_events([old_run], seed=5)
    r = client.post("/api/v1/events", json=retry)
    assert r.status_code == 400
    rejected = r.get_json()["rejected"]
    assert len(rejected) == len(retry) and {x["field"] for x in rejected} == {"start_time"}
    assert "retention watermark" in rejected[0]["error"]
    assert _answers(client) == before
    # An event after the watermark still goes in (and a re-sent kept one is still a duplicate).
    kept = next(r for r in loaded if r.start_ns >= CUTOFF)
    again = client.post("/api/v1/events", json=to_events([kept], seed=5)).get_json()
    assert again["accepted"] == 0 and again["duplicates"] == len(to_events([kept], seed=5))
    new = to_events(build_runs(9, 3, CUTOFF + HOUR, HOUR, prefix="new"), seed=9)
    assert client.post("/api/v1/events", json=new).get_json()["accepted"] == len(new)


def test_children_whose_run_never_arrived_and_the_otlp_state_of_pruned_runs_go_too(pipeline, loaded):
    store = pipeline.store
    orphan = [e for e in to_events(build_runs(3, 4, T0, HOUR, prefix="orphan"), seed=3) if e["kind"] != "run"]
    late_orphan = [e for e in to_events(build_runs(4, 2, CUTOFF + HOUR, HOUR, prefix="young"), seed=4)
                   if e["kind"] != "run"]  # fmt: skip
    assert not ingest_objects(store, orphan + late_orphan).rejected
    old = sorted(_old_runs(loaded))
    with store.engine.begin() as c:
        c.execute(otlp_traces.insert(), [
            {"trace_id": f"{i:032x}", "run_id": rid, "state": "closed", "first_seen_ns": T0, "last_seen_ns": T0,
             "template": "{}"} for i, rid in enumerate([old[0], old[1], orphan[0]["run_id"]])
        ])  # fmt: skip
    plan = store.prune_plan(CUTOFF)
    assert plan.orphan_events == len(orphan) and plan.otlp_traces == 3

    result = store.prune(CUTOFF, now_ns=FIXED_NOW_NS, runs_per_transaction=50)

    assert result.events == plan.events
    with store.engine.connect() as c:
        ids = set(c.execute(sa.select(events.c.run_id)).scalars())
        assert c.execute(sa.select(sa.func.count()).select_from(otlp_traces)).scalar_one() == 0
    assert not any(e["run_id"] in ids for e in orphan)
    assert all(e["run_id"] in ids for e in late_orphan), "children after the cutoff are kept"


def test_a_second_prune_moves_the_watermark_forward_and_never_back(pipeline, loaded):
    store = pipeline.store
    first = store.prune(CUTOFF - DAY, now_ns=FIXED_NOW_NS)
    second = store.prune(CUTOFF, now_ns=FIXED_NOW_NS)
    assert first.runs + second.runs == len(_old_runs(loaded))
    store.prune(CUTOFF - 2 * DAY, now_ns=FIXED_NOW_NS)
    mark = store.retention_watermark()
    assert mark is not None and mark.pruned_before_ns == CUTOFF
    assert mark.runs_pruned == len(_old_runs(loaded))


# -- the command line -------------------------------------------------------------------------------
def _cli_db(tmp_path, runs):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    p = build_pipeline(Settings(database_url=url))
    ingest(p.store, to_events(runs, seed=5))
    return url, p


def test_prune_dry_run_says_what_would_go_and_deletes_nothing(tmp_path, capsys):
    runs = build_runs(5, 120, T0, 4 * DAY - HOUR)
    url, p = _cli_db(tmp_path, runs)
    n_before = p.store.count_events()
    assert main(["prune", "--database-url", url, "--before", format_timestamp(CUTOFF), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete the raw events of {len(_old_runs(runs))} runs started before" in out
    assert p.store.count_events() == n_before and p.store.retention_watermark() is None
    assert main(["prune", "--database-url", url, "--before", format_timestamp(CUTOFF), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"deleted {len(_old_runs(runs))} runs" in out and p.store.count_events() < n_before
    with p.store.engine.connect() as c:
        assert c.execute(sa.select(retention.c.pruned_before_ns)).scalar_one() == CUTOFF
    p.close()


def test_prune_older_than_counts_back_from_now(tmp_path, capsys):
    now = time.time_ns()
    runs = build_runs(6, 60, now - 50 * DAY, 15 * DAY) + build_runs(7, 30, now - 10 * DAY, 5 * DAY, prefix="k")
    url, p = _cli_db(tmp_path, runs)
    assert main(["prune", "--database-url", url, "--older-than", "30d", "-q"]) == 0
    assert "deleted 60 runs" in capsys.readouterr().out
    assert len(p.store.run_ids(Filters())) == 30
    with pytest.raises(SystemExit):
        main(["prune", "--database-url", url, "--older-than", "thirty days"])
    p.close()


def test_rebuild_rollups_and_reclassify_refuse_after_a_prune_unless_told_to_discard_the_history(tmp_path, capsys):
    runs = build_runs(5, 120, T0, 4 * DAY - HOUR)
    url, p = _cli_db(tmp_path, runs)
    p.store.prune(CUTOFF, now_ns=FIXED_NOW_NS)
    cells = snapshot(p.store)
    assert main(["rebuild-rollups", "--database-url", url, "-q"]) == 2
    assert "refusing to rebuild" in capsys.readouterr().err
    assert main(["reclassify", "--database-url", url, "-q"]) == 2
    assert snapshot(p.store) == cells, "a refused rebuild changed nothing"
    assert main(["rebuild-rollups", "--database-url", url, "-q", "--discard-pruned-history"]) == 0
    assert "WARNING" in capsys.readouterr().err
    assert snapshot(p.store) != cells
    rebuilt = snapshot(p.store)
    rebuild_from_scratch(p.store)
    assert snapshot(p.store) == rebuilt, "what is left equals a rebuild of the kept events"
    p.close()


def test_a_concurrent_post_succeeds_while_a_prune_runs_under_a_short_busy_timeout(tmp_path):
    db = tmp_path / "prune.db"
    pruner = build_pipeline(Settings(database_url=f"sqlite:///{db}"))
    server = build_pipeline(Settings(database_url=f"sqlite:///{db}", db_busy_timeout_ms=2_000))
    try:
        ingest(pruner.store, to_events(build_runs(21, 3000, T0, 2 * DAY), seed=21), batch=2000)
        client = create_app(server.settings, pipeline=server).test_client()
        statuses: list[int] = []
        pruning, finished = threading.Event(), threading.Event()

        def post_loop() -> None:
            pruning.wait()
            i = 0
            while not finished.is_set():
                evs = to_events(build_runs(1000 + i, 5, CUTOFF + HOUR, DAY, prefix=f"live{i}-"), seed=i)
                statuses.append(client.post("/api/v1/events", json=evs).status_code)
                i += 1
                time.sleep(0.01)

        t = threading.Thread(target=post_loop)
        t.start()
        try:
            result = pruner.store.prune(T0 + 2 * DAY, now_ns=FIXED_NOW_NS, runs_per_transaction=200,
                                        progress=lambda d, tot: pruning.set())  # fmt: skip
        finally:
            finished.set()
            t.join()
        assert result.runs == 3000 and result.transactions == 15
        assert statuses and set(statuses) == {200}, statuses
    finally:
        server.close()
        pruner.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("workers", [1, 2], ids=["waitress", "gunicorn with two workers"])
def test_serve_with_hypermind_retention_prunes_periodically_in_one_process(tmp_path, workers):
    import os
    import subprocess
    import sys

    import requests

    now = time.time_ns()
    runs = build_runs(6, 40, now - 50 * DAY, 15 * DAY) + build_runs(7, 20, now - 10 * DAY, 5 * DAY, prefix="k")
    url, p = _cli_db(tmp_path, runs)
    port = _free_port()
    env = {**os.environ, "HYPERMIND_DATABASE_URL": url, "HYPERMIND_RETENTION": "30d",
           "HYPERMIND_RETENTION_INTERVAL_S": "1", "HYPERMIND_PORT": str(port), "HYPERMIND_WORKERS": str(workers)}
    proc = subprocess.Popen([sys.executable, "-m", "hypermindlabs.cli.main", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        body = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/api/v1/runs?limit=500", timeout=30).json()
                if "pruned_before" in body:
                    break
            except requests.RequestException:  # not up yet, or slow under a loaded machine
                pass
            time.sleep(0.5)
        assert body is not None and "pruned_before" in body, "serve never pruned"
        assert {r["run_id"] for r in body["runs"]} == {r.run_id for r in runs if r.run_id.startswith("k")}
        time.sleep(2.5)  # a few more intervals: nothing else goes, the watermark moves with the clock only
        mark = p.store.retention_watermark()
        assert mark is not None and mark.runs_pruned == 40
        assert now - 30 * DAY <= mark.pruned_before_ns <= time.time_ns() - 30 * DAY
    finally:
        proc.terminate()
        # gunicorn waits up to its graceful_timeout (10 s) for the workers: ample on a loaded machine
        out = proc.communicate(timeout=60)[0]
        p.close()
    assert "retention: prune failed" not in out, out[-2000:]
    assert out.count("retention: pruned") == 1, out[-2000:]  # one pruning thread, not one per worker
