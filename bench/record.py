"""Recording cost: RunManager + store + telemetry per event against a bare OTel histogram record.

Everything is measured in the same process run, so the ratios hold on a shared, noisy machine
where absolute figures do not. What each figure is:

- ``bare record``: one ``Histogram.record(0.5, attrs)`` on a plain OTel MeterProvider with the
  four attributes a chat measurement carries (operation, provider, model, project).
- ``agent hot path``: wall time spent in the *agent's* thread per event — ``rm.run()``, a
  ``run.llm()`` step with usage, a ``run.tool()`` step, the run's end (3 events per run) — while
  the RunManager's background writer stores the events and the store's commit hook feeds
  Telemetry (it competes for the GIL). This is what instrumented agent code pays; the goal is
  ≤ 3× a bare record.
- ``end to end``: from the first event until ``rm.flush()`` returns (validated, stored in the
  database, recorded as metrics), per event; with and without the telemetry hook.
- ``telemetry``: ``Telemetry.record_rows`` alone on the same stored rows, per event.
- threads: the same total work from 4 agent threads vs 1 (end-to-end events/s, goal ≥ 0.9×), and
  ``record_rows`` from 4 threads vs 1.

    .venv/bin/python bench/record.py                       # SQLite, 1,200 runs (3,600 events)
    .venv/bin/python bench/record.py --runs 5000 --postgres postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

from hypermindlabs import conventions as c  # noqa: E402
from hypermindlabs.config import Settings  # noqa: E402
from hypermindlabs.export.telemetry import Telemetry  # noqa: E402
from hypermindlabs.sdk.run_manager import RunManager  # noqa: E402
from hypermindlabs.store import EventStore  # noqa: E402
from hypermindlabs.wiring import build_pipeline  # noqa: E402

EVENTS_PER_RUN = 3
REPEATS = 5


def bare_record_ns(n: int = 50_000) -> float:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    hist = provider.get_meter("bench").create_histogram(
        "bench.duration", unit="s", explicit_bucket_boundaries_advisory=list(c.DURATION_BUCKETS_S)
    )
    attrs = {c.ATTR_OPERATION: "chat", c.ATTR_PROVIDER: "openai", c.ATTR_REQUEST_MODEL: "gpt-4o",
             c.ATTR_PROJECT: "support"}  # fmt: skip
    for _ in range(1000):
        hist.record(0.5, attrs)
    t = time.perf_counter_ns()
    for _ in range(n):
        hist.record(0.5, attrs)
    return (time.perf_counter_ns() - t) / n


def _store(url: str) -> EventStore:
    # The product's pipeline without its telemetry: each measurement attaches the one it times.
    return build_pipeline(Settings(database_url=url), export=False).store


class Databases:
    def __init__(self, pg: str | None) -> None:
        self.pg = pg
        self.tmp = Path(tempfile.mkdtemp(prefix="hm-bench-"))
        self.drops: list[Callable[[], None]] = []

    def fresh(self) -> EventStore:
        if self.pg is None:
            return _store(f"sqlite:///{self.tmp / uuid.uuid4().hex}.db")
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.pg, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')

        def drop() -> None:
            with psycopg.connect(self.pg, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

        self.drops.append(drop)
        sep = "&" if "?" in self.pg else "?"
        return _store(f"{self.pg}{sep}options=-csearch_path%3D{schema}")

    def close(self) -> None:
        for drop in self.drops:
            drop()


def agent(rm: RunManager, runs: int, k: int) -> None:
    for i in range(runs):
        with rm.run("answer", project="support", scenario=("refund", "billing")[i % 2],
                    model=("gpt-4o", "claude-3-5-sonnet")[i % 2]) as run:  # fmt: skip
            with run.llm() as step:
                step.set_usage(input_tokens=800 + i % 50, output_tokens=90)
            with run.tool(("crm_lookup", "web_search")[(i + k) % 2]):
                pass


def through_run_manager(
    store: EventStore, runs: int, threads: int, telemetry: Telemetry | None
) -> dict[str, float]:
    """Agent-thread time and end-to-end time per event, for ``runs`` runs split over ``threads``."""
    if telemetry is not None:
        telemetry.attach(store)
    rm = RunManager(store, max_buffer=runs * EVENTS_PER_RUN + 10, batch_size=1000, flush_interval_s=0.05)
    per_thread = runs // threads
    busy: list[float] = [0.0] * threads

    def work(k: int) -> None:
        t0 = time.perf_counter()
        agent(rm, per_thread, k)
        busy[k] = time.perf_counter() - t0

    start = time.perf_counter()
    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    rm.flush(timeout=600)
    end_to_end = time.perf_counter() - start
    rm.close()
    events = per_thread * threads * EVENTS_PER_RUN
    if rm.stats.dropped_buffer_full or rm.stats.dropped_sink_error or rm.stats.written != events:
        raise SystemExit(f"bench invalid: {rm.stats}")
    return {
        "agent_ns": sum(busy) / events * 1e9,
        "e2e_ns": end_to_end / events * 1e9,
        "events_per_s": events / end_to_end,
    }


def record_rows_ns(rows: list[dict[str, Any]], threads: int) -> tuple[float, float]:
    """(ns per event, events/s) of Telemetry.record_rows alone, rows split over ``threads``."""
    tel = Telemetry.from_settings(Settings())
    chunks = [rows[k::threads] for k in range(threads)]

    def work(chunk: list[dict[str, Any]]) -> None:
        for i in range(0, len(chunk), 500):
            tel.record_rows(chunk[i : i + 500])

    start = time.perf_counter()
    pool = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    return elapsed / len(rows) * 1e9, len(rows) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1200, help="runs per measurement (3 events each)")
    ap.add_argument("--postgres", help="PostgreSQL URL (default: SQLite files in a temp dir)")
    args = ap.parse_args()
    runs = args.runs - args.runs % 4
    dbs = Databases(args.postgres)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    try:
        captured: list[dict[str, Any]] = []
        capture_store = dbs.fresh()
        capture_store.commit_hooks.append(lambda rows: captured.extend(dict(r) for r in rows))
        through_run_manager(capture_store, runs, 1, None)

        # Alternate the variants inside each repeat so load drifting on a shared machine hits
        # them alike; ratios are taken per repeat, then the median.
        bare_runs, with_runs, without_runs, four_runs, tel1_runs, tel4_runs = [], [], [], [], [], []
        for _ in range(REPEATS):
            bare_runs.append(bare_record_ns())
            with_runs.append(through_run_manager(dbs.fresh(), runs, 1, Telemetry.from_settings(Settings())))
            four_runs.append(through_run_manager(dbs.fresh(), runs, 4, Telemetry.from_settings(Settings())))
            without_runs.append(through_run_manager(dbs.fresh(), runs, 1, None))
            tel1_runs.append(record_rows_ns(captured, 1))
            tel4_runs.append(record_rows_ns(captured, 4))
    finally:
        dbs.close()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    bare = med(bare_runs)
    with_tel = {k: med([r[k] for r in with_runs]) for k in with_runs[0]}
    without = {k: med([r[k] for r in without_runs]) for k in without_runs[0]}
    four = {k: med([r[k] for r in four_runs]) for k in four_runs[0]}
    tel1 = med([t[0] for t in tel1_runs])
    agent_ratio = med([w["agent_ns"] / b for w, b in zip(with_runs, bare_runs, strict=True)])
    tel_ratio = med([t[0] / b for t, b in zip(tel1_runs, bare_runs, strict=True)])
    e2e_ratio = med([w["e2e_ns"] / b for w, b in zip(with_runs, bare_runs, strict=True)])
    overhead = med([w["e2e_ns"] / wo["e2e_ns"] - 1 for w, wo in zip(with_runs, without_runs, strict=True)])
    pairs = zip(four_runs, with_runs, strict=True)
    e2e_threads = med([f["events_per_s"] / w["events_per_s"] for f, w in pairs])
    tel_threads = med([t4[1] / t1[1] for t4, t1 in zip(tel4_runs, tel1_runs, strict=True)])

    events = runs * EVENTS_PER_RUN
    print(f"recording cost, {backend}, {runs} runs = {events} events per measurement, median of {REPEATS}")
    print(f"  bare OTel Histogram.record (4 attributes)          {bare / 1000:8.2f} µs")
    print(f"  agent hot path per event (RunManager, in-thread)  {with_tel['agent_ns'] / 1000:8.2f} µs"
          f"   ratio to bare {agent_ratio:5.2f}×  (goal ≤ 3×)")  # fmt: skip
    print(f"  telemetry.record_rows per stored event            {tel1 / 1000:8.2f} µs"
          f"   ratio to bare {tel_ratio:5.2f}×")  # fmt: skip
    print(f"  end to end per event, store + telemetry           {with_tel['e2e_ns'] / 1000:8.2f} µs"
          f"   ratio to bare {e2e_ratio:5.2f}×")  # fmt: skip
    print(f"  end to end per event, store only                  {without['e2e_ns'] / 1000:8.2f} µs"
          f"   telemetry adds {overhead:6.1%}")  # fmt: skip
    print("threads (same total work)")
    print(f"  end to end, 1 agent thread                        {with_tel['events_per_s']:8.0f} events/s")
    print(f"  end to end, 4 agent threads                       {four['events_per_s']:8.0f} events/s"
          f"   ratio {e2e_threads:5.2f}×  (goal ≥ 0.9×)")  # fmt: skip
    tel1_rate, tel4_rate = med([t[1] for t in tel1_runs]), med([t[1] for t in tel4_runs])
    print(f"  record_rows, 1 thread                             {tel1_rate:8.0f} events/s")
    print(f"  record_rows, 4 threads                            {tel4_rate:8.0f} events/s"
          f"   ratio {tel_threads:5.2f}×  (goal ≥ 0.9×)")  # fmt: skip


if __name__ == "__main__":
    main()
