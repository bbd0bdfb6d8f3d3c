"""What the read deadline costs: the same API reads with a deadline open and without, in one run.

Every GET request reads under a deadline (``HYPERMIND_QUERY_TIMEOUT_MS``): on PostgreSQL one
``SET LOCAL statement_timeout`` before each statement, on SQLite a progress handler every few
thousand VM instructions. This loads the demo workload (2 days) into SQLite and, when it answers,
PostgreSQL, then times each query through the store and the rollup readers with the deadline
(``store.read()``) and without it (a bare ``engine.connect()``), interleaved, and prints the p50s
and their ratio (deadline / bare; 1.00 is free).

    .venv/bin/python bench/read_deadline.py [--repeat 40] [--no-postgres] [--busy-threads 2]

``--busy-threads`` keeps that many Python threads spinning meanwhile, as a server's other request
threads do: SQLite's progress handler needs the GIL at each call, so this is where it would show.

Figures only, no timed asserts: this machine is shared and noisy.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypermindlabs.config import Settings  # noqa: E402
from hypermindlabs.core.filters import parse_filters  # noqa: E402
from hypermindlabs.demo import load_demo  # noqa: E402
from hypermindlabs.rollups.answers import summary, timeseries  # noqa: E402
from hypermindlabs.store import runs  # noqa: E402
from hypermindlabs.web.params import parse_metrics_query  # noqa: E402
from hypermindlabs.wiring import build_pipeline  # noqa: E402

END = datetime(2026, 1, 1, tzinfo=UTC)
NOW_NS = int(END.timestamp()) * 10**9
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _queries() -> list[tuple[str, Callable[[Any], Any]]]:
    def metrics(params: dict[str, list[str]], ts: bool) -> Callable[[Any], Any]:
        q = parse_metrics_query(params, now_ns=NOW_NS, timeseries=ts)
        return (lambda conn: timeseries(conn, q)) if ts else (lambda conn: summary(conn, q))

    def run_list(params: dict[str, list[str]]) -> Callable[[Any], Any]:
        f = parse_filters(params, now_ns=NOW_NS)
        return lambda conn: runs.list_runs(conn, f, limit=100)

    return [
        ("summary 48h by model", metrics({"from": ["now-48h"], "group_by": ["model"]}, False)),
        ("summary 48h by tag.env,error_class", metrics({"from": ["now-48h"], "group_by": ["tag.env,error_class"]}, False)),
        ("timeseries 48h step 1h by model", metrics({"from": ["now-48h"], "step": ["1h"], "group_by": ["model"]}, True)),
        ("runs page of 100, tag filter", run_list({"tag.env": ["prod"]})),
    ]  # fmt: skip


def _bench(store: Any, repeat: int) -> list[tuple[str, float, float]]:
    out = []
    for name, fn in _queries():
        with_deadline: list[float] = []
        bare: list[float] = []
        for _ in range(repeat):
            t = time.perf_counter()
            with store.read() as conn:
                fn(conn)
            with_deadline.append(time.perf_counter() - t)
            t = time.perf_counter()
            with store.engine.connect() as conn:
                fn(conn)
            bare.append(time.perf_counter() - t)
        out.append((name, statistics.median(with_deadline), statistics.median(bare)))
    return out


def _report(label: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{label}: p50 ms with deadline / bare / ratio")
    for name, a, b in rows:
        print(f"  {name:40s} {a * 1e3:8.2f} {b * 1e3:8.2f} {a / b:6.2f}")
    print(f"  {'geometric mean ratio':40s} {'':8s} {'':8s} "
          f"{statistics.geometric_mean([a / b for _, a, b in rows]):6.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--busy-threads", type=int, default=0)
    args = ap.parse_args()
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    busy = [threading.Thread(target=spin, daemon=True) for _ in range(args.busy_threads)]
    with tempfile.TemporaryDirectory() as tmp:
        urls = [("SQLite", f"sqlite:///{tmp}/bench.db")]
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        if not args.no_postgres:
            try:
                import psycopg

                with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as c:
                    c.execute(f'CREATE SCHEMA "{schema}"')
                urls.append(("PostgreSQL", f"{PG_URL}?options=-csearch_path%3D{schema}"))
            except Exception as exc:  # noqa: BLE001 - the bench runs on SQLite alone then
                print(f"PostgreSQL skipped: {exc}")
        try:
            for label, url in urls:
                pipeline = build_pipeline(Settings(database_url=url), clock=lambda: NOW_NS)
                result = load_demo(pipeline.store, seed=7, days=2, runs_per_day=250, end=END, progress=False)
                print(f"{label}: {result.accepted} events loaded")
                for t in busy:
                    t.start() if not t.is_alive() else None
                _report(f"{label}, {args.busy_threads} busy threads", _bench(pipeline.store, args.repeat))
                pipeline.close()
        finally:
            stop.set()
            if len(urls) > 1:
                import psycopg

                with psycopg.connect(PG_URL, autocommit=True) as c:
                    c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
