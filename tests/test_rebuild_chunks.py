"""rebuild-rollups on SQLite in short transactions: writers in other connections (as other processes
would be) get the write lock between chunks, well inside a short busy timeout, and the rollups after
a rebuild with ingestion going on equal a rebuild from scratch (nothing counted twice or lost)."""

from __future__ import annotations

import random
import threading
import time

from hypermindlabs.config import Settings
from hypermindlabs.ingest import ingest_objects
from hypermindlabs.rollups import rebuild_rollups
from hypermindlabs.web import create_app
from hypermindlabs.wiring import build_pipeline
from tests.test_rollups import DAY, T0, build_runs, enrich, rebuild_from_scratch, run_count, snapshot, to_events


def _pipeline(db, busy_ms: int = 30_000, export: bool = False):
    return build_pipeline(
        Settings(database_url=f"sqlite:///{db}", db_busy_timeout_ms=busy_ms), enricher=enrich, export=export
    )


def test_a_chunked_rebuild_with_writers_between_its_chunks_equals_a_rebuild_from_scratch(tmp_path):
    db = tmp_path / "rollups.db"
    rebuilder, writer = _pipeline(db), _pipeline(db, busy_ms=200)
    try:
        evs = to_events(build_runs(11, 150, T0, 2 * DAY), seed=11)
        random.Random(12).shuffle(evs)  # children before and after their runs: late children after S
        first, rest = evs[: len(evs) // 2], evs[len(evs) // 2 :]
        assert not ingest_objects(rebuilder.store, first).rejected
        batches = [rest[i : i + 40] for i in range(0, len(rest), 40)]
        chunks_seen = []

        def between_chunks(done: int, total: int) -> None:
            chunks_seen.append(done)
            if batches:  # another connection writes while the rebuild is half done
                assert not ingest_objects(writer.store, batches.pop(0)).rejected

        rebuild_rollups(rebuilder.store, progress=between_chunks, runs_per_transaction=7)
        assert len(chunks_seen) > 5 and not batches, "the writer got in between chunks"
        assert rebuilder.store.count_events() == len(evs)
        during = snapshot(rebuilder.store)
        rebuild_from_scratch(rebuilder.store)
        assert snapshot(rebuilder.store) == during
        assert run_count(rebuilder.store) == 150
    finally:
        writer.close()
        rebuilder.close()


def test_a_concurrent_post_succeeds_during_a_rebuild_under_a_short_busy_timeout(tmp_path):
    db = tmp_path / "rollups.db"
    rebuilder = _pipeline(db)
    server = _pipeline(db, busy_ms=2_000, export=True)  # the serving app: its own connections and lock
    try:
        assert not ingest_objects(rebuilder.store, to_events(build_runs(21, 3000, T0, 2 * DAY), seed=21)).rejected
        client = create_app(server.settings, pipeline=server).test_client()
        statuses: list[int] = []
        posted_during: list[bool] = []
        rebuilding = threading.Event()
        finished = threading.Event()

        def post_loop() -> None:
            rebuilding.wait()
            i = 0
            while not finished.is_set():
                evs = to_events(build_runs(1000 + i, 5, T0, DAY, prefix=f"live{i}-"), seed=i)
                statuses.append(client.post("/api/v1/events", json=evs).status_code)
                posted_during.append(not finished.is_set())
                i += 1
                time.sleep(0.01)

        t = threading.Thread(target=post_loop)
        t.start()

        def progress(done: int, total: int) -> None:
            rebuilding.set()

        try:
            rebuild_rollups(rebuilder.store, progress=progress, runs_per_transaction=200)
        finally:
            finished.set()
            t.join(30)
        assert sum(posted_during) >= 1, "no POST overlapped the rebuild"
        assert statuses and set(statuses) == {200}, statuses
        during = snapshot(rebuilder.store)
        rebuild_from_scratch(rebuilder.store)
        assert snapshot(rebuilder.store) == during
        assert run_count(rebuilder.store) == 3000 + 5 * len(statuses)
    finally:
        server.close()
        rebuilder.close()
