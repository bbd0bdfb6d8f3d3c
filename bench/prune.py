"""What ``hypermind-obs prune`` costs a concurrent writer: chunked against one transaction, in one run.

Loads the demo workload into SQLite, copies it (online backup API) so both variants start from
the same file, then prunes the older half of each: once in transactions of ``--runs-per-transaction``
runs (what the command does) and once in a single transaction (the baseline). Meanwhile a writer on
its own connection (as a serving process) appends one small batch every 20 ms. Prints, per variant,
the prune's duration, its longest transaction (what a writer may wait for: SQLite's write lock is
held that long), the writer's batch latencies (p50, p99, max), and the ratios chunked / baseline.

    .venv/bin/python bench/prune.py [--days 8] [--runs-per-day 1500] [--runs-per-transaction 2000]

Figures only, no timed asserts: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.engine import Connection  # noqa: E402

from hypermindlabs.cli.retention import backup_sqlite  # noqa: E402
from hypermindlabs.config import Settings  # noqa: E402
from hypermindlabs.demo import load_demo  # noqa: E402
from hypermindlabs.ingest import ingest_objects  # noqa: E402
from hypermindlabs.store import retention  # noqa: E402
from hypermindlabs.wiring import build_pipeline  # noqa: E402

DAY_NS = 86_400 * 10**9


def _writer(url: str, stop: threading.Event, latencies: list[float], errors: list[str]) -> None:
    p = build_pipeline(Settings(database_url=url))
    i = 0
    try:
        while not stop.is_set():
            now = time.time_ns()
            batch = [{"run_id": f"bench-w{i}-{now}", "kind": "run", "start_time": now // 10**6, "duration_ms": 12,
                      "status": "ok", "project": "bench", "scenario": "prune", "model": "m"}]  # fmt: skip
            t = time.perf_counter()
            try:
                result = ingest_objects(p.store, batch)
                if result.rejected:
                    errors.append(str(result.rejected[0]))
            except Exception as exc:  # noqa: BLE001 - counted and printed
                errors.append(repr(exc)[:200])
            latencies.append(time.perf_counter() - t)
            i += 1
            time.sleep(0.02)
    finally:
        p.close()


def _variant(url: str, cutoff: int, per_tx: int) -> dict[str, Any]:
    p = build_pipeline(Settings(database_url=url))
    held: list[float] = []

    @contextmanager
    def timed() -> Iterator[Connection]:
        with p.store.transaction() as conn:
            t = time.perf_counter()
            try:
                yield conn
            finally:
                held.append(time.perf_counter() - t)

    stop, latencies, errors = threading.Event(), [], []  # type: ignore[var-annotated]
    w = threading.Thread(target=_writer, args=(url, stop, latencies, errors))
    w.start()
    time.sleep(0.5)
    started = time.perf_counter()
    result = retention.prune(timed, p.store.engine.connect, cutoff, now_ns=time.time_ns(), runs_per_transaction=per_tx)
    took = time.perf_counter() - started
    time.sleep(0.3)
    stop.set()
    w.join()
    p.close()
    lat = sorted(latencies)
    return {"runs": result.runs, "events": result.events, "transactions": result.transactions, "took_s": took,
            "longest_tx_s": max(held), "writer_p50_ms": statistics.median(lat) * 1e3,
            "writer_p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1e3, "writer_max_ms": lat[-1] * 1e3,
            "writer_batches": len(lat), "writer_errors": len(errors)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--runs-per-day", type=int, default=1500)
    ap.add_argument("--runs-per-transaction", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prune-") as tmp:
        src = Path(tmp) / "demo.db"
        end = datetime.now(UTC).replace(microsecond=0)
        p = build_pipeline(Settings(database_url=f"sqlite:///{src}"))
        t = time.perf_counter()
        load_demo(p.store, seed=7, days=args.days, runs_per_day=args.runs_per_day, end=end, progress=False)
        events = p.store.count_events()
        p.close()
        print(f"loaded {events:,} events ({args.days} days × {args.runs_per_day} runs) in {time.perf_counter() - t:.0f} s")
        cutoff = int(end.timestamp()) * 10**9 - (args.days // 2) * DAY_NS
        rows = {}
        for name, per_tx in (("chunked", args.runs_per_transaction), ("one transaction", 10**9)):
            copy = Path(tmp) / f"{name.replace(' ', '_')}.db"
            backup_sqlite(src, copy)
            rows[name] = _variant(f"sqlite:///{copy}", cutoff, per_tx)
    cols = ["runs", "events", "transactions", "took_s", "longest_tx_s", "writer_p50_ms", "writer_p99_ms",
            "writer_max_ms", "writer_batches", "writer_errors"]  # fmt: skip
    print(f"{'variant':<16}" + "".join(f"{c:>15}" for c in cols))
    for name, r in rows.items():
        print(f"{name:<16}" + "".join(f"{r[c]:>15.3f}" if isinstance(r[c], float) else f"{r[c]:>15,}" for c in cols))
    a, b = rows["chunked"], rows["one transaction"]
    print(f"ratios chunked / one transaction: longest write-lock hold {a['longest_tx_s'] / b['longest_tx_s']:.2f}, "
          f"writer max latency {a['writer_max_ms'] / b['writer_max_ms']:.2f}, "
          f"writer p99 {a['writer_p99_ms'] / b['writer_p99_ms']:.2f}, prune duration {a['took_s'] / b['took_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
