"""RunManager with its database unavailable (issue #15 item 3): a PostgreSQL of the test's own, first
hung (every server process SIGSTOPped: connects and queries wait) and then stopped (connections
refused). The agent's calls never wait on it, memory stays bounded by the buffer, every event is
either written or counted as dropped, and writing resumes by itself when the database returns."""

from __future__ import annotations

import os
import signal
import threading
import time
import tracemalloc
from pathlib import Path

from hypermindlabs.config import Settings
from hypermindlabs.ingest import ingest_objects
from hypermindlabs.sdk.run_manager import RunManager
from hypermindlabs.wiring import build_pipeline
from tests.pg_instance import PgInstance


def _server_pids(pg: PgInstance) -> list[int]:
    master = int((pg.data / "postmaster.pid").read_text().split()[0])
    kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, kids)]


class CountingSink:
    """The store's own sink (ingest_objects), counting the calls that returned."""

    def __init__(self, store) -> None:
        self.store = store
        self.returned = 0
        self.lock = threading.Lock()

    def __call__(self, batch):
        try:
            return ingest_objects(self.store, batch)
        finally:
            with self.lock:
                self.returned += 1


def _agent(rm: RunManager, n: int, prefix: str) -> None:
    for i in range(n):
        with rm.run("answer", run_id=f"{prefix}-{i}", project="p") as run:
            with run.llm(model="m") as step:
                step.set_usage(input_tokens=10, output_tokens=2)
            with run.tool("crm"):
                pass


def _accounted(rm: RunManager) -> int:
    s = rm.stats
    return s.written + s.dropped_buffer_full + s.dropped_sink_error + s.dropped_invalid


def test_the_agent_never_waits_on_an_unavailable_database_memory_stays_bounded_and_writing_recovers(private_pg):
    pipeline = build_pipeline(Settings(database_url=private_pg.url))
    store = pipeline.store
    sink = CountingSink(store)
    rm = RunManager(sink=sink, max_buffer=2_000, batch_size=500, flush_interval_s=0.05)
    try:
        _agent(rm, 100, "before")
        assert rm.flush(30) and rm.stats.written == 300 and store.count_events() == 300

        # 1. Hung database: the writer thread blocks inside the sink; the agent goes on.
        pids = _server_pids(private_pg)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            returned_before = sink.returned
            _agent(rm, 10, "hang-warmup")  # the writer picks these up and hangs on the database
            deadline = time.monotonic() + 10
            while rm._queue.qsize() and time.monotonic() < deadline:
                time.sleep(0.01)
            tracemalloc.start()
            _agent(rm, 3_000, "hang-a")
            mid, _ = tracemalloc.get_traced_memory()
            _agent(rm, 3_000, "hang-b")  # 9,000 more events: kept, they would be megabytes
            end, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            # Every one of the 6,000 runs was recorded while the sink was still in one call:
            # the agent's calls did not wait for the database.
            assert sink.returned == returned_before
            assert rm._queue.qsize() <= 2_000
            assert end - mid < 512 * 1024, f"memory grew {end - mid} bytes while the buffer was full"
            assert rm.stats.dropped_buffer_full >= 18_000 - 2_000 - 500  # buffer + one batch in the sink
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        assert rm.flush(60)  # the database answers again: the hung write completes, the buffer drains
        written_after_hang = store.count_events()
        assert written_after_hang == 300 + rm.stats.written - 300

        # 2. Stopped database: connections refused, each batch fails and is counted, nothing raised.
        private_pg.stop()
        _agent(rm, 200, "down")
        assert rm.flush(60)
        assert rm.stats.dropped_sink_error >= 600

        # 3. Back: the same RunManager writes again without anyone telling it.
        private_pg.start()
        _agent(rm, 100, "after")
        assert rm.flush(60)
        assert store.get_run("after-99") is not None and store.get_run("after-0") is not None
        assert rm.stats.recorded == 3 * (100 + 10 + 6_000 + 200 + 100)
        assert _accounted(rm) == rm.stats.recorded  # every event written or counted as dropped
        assert store.count_events() == rm.stats.written
    finally:
        rm.close(5)
        pipeline.close()
