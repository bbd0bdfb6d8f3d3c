"""Ingest throughput: batched HTTP posts and RunManager vs the raw insert rate, as ratios.

All three paths write the same demo events into fresh databases of the same schema in the same
run, so the ratios hold on a shared, noisy machine where absolute figures do not.

    .venv/bin/python bench/ingest.py                 # SQLite, 60k events
    .venv/bin/python bench/ingest.py --events 200000 --postgres postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypermindlabs.config import Settings  # noqa: E402
from hypermindlabs.core.events import parse_event  # noqa: E402
from hypermindlabs.core.record import stored_event as _row  # noqa: E402
from hypermindlabs.core.vocabulary import INHERITED  # noqa: E402
from hypermindlabs.demo import demo_spec, generate_events  # noqa: E402
from hypermindlabs.ingest import ingest_objects  # noqa: E402
from hypermindlabs.sdk.run_manager import RunManager  # noqa: E402
from hypermindlabs.store.schema import events as events_table  # noqa: E402
from hypermindlabs.wiring import build_pipeline  # noqa: E402

BATCH = 5000


def demo_events(n: int) -> list[dict]:
    spec = demo_spec(seed=1, end=datetime(2026, 1, 15, tzinfo=UTC), days=14)
    out = []
    for ev in generate_events(spec, runs_per_day=max(50, n // 14 // 6)):
        out.append(ev)
        if len(out) >= n and ev["kind"] == "run":
            break
    return out


def fresh_url(kind: str, tmp: Path, pg: str | None) -> tuple[str, callable]:
    if kind == "sqlite":
        path = tmp / f"{uuid.uuid4().hex}.db"
        return f"sqlite:///{path}", lambda: None
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(pg, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')

    sep = "&" if "?" in pg else "?"
    return f"{pg}{sep}options=-csearch_path%3D{schema}", drop


def raw_insert(url: str, rows: list[dict]) -> float:
    """The baseline: the same rows, pre-built, inserted with the DBAPI's executemany per batch."""
    store = build_pipeline(Settings(database_url=url), export=False).store
    cols = list(rows[0].keys())
    sql = str(events_table.insert().compile(dialect=store.engine.dialect, column_keys=cols))
    params = [tuple(r[c] for c in cols) for r in rows] if store.dialect == "sqlite" else rows
    t = time.perf_counter()
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        for i in range(0, len(params), BATCH):
            cur.executemany(sql, params[i : i + BATCH])
            raw.commit()
    finally:
        raw.close()
    took = time.perf_counter() - t
    store.close()
    return len(rows) / took


def http_ingest(url: str, bodies: list[bytes], n: int) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("hypermind-obs")
    proc = subprocess.Popen([str(exe), "serve", "--database-url", url, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):  # a first start on PostgreSQL migrates the schema: allow a minute
            try:
                requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        session = requests.Session()
        t = time.perf_counter()
        accepted = 0
        for body in bodies:
            r = session.post(
                f"{base}/api/v1/events", data=body, headers={"Content-Type": "application/json"}, timeout=120
            )
            r.raise_for_status()
            accepted += r.json()["accepted"]
        took = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(10)
    if accepted != n:
        raise SystemExit(f"HTTP path stored {accepted} of {n} events")
    return n / took


def in_process_ingest(url: str, evs: list[dict]) -> float:
    store = build_pipeline(Settings(database_url=url), export=False).store
    t = time.perf_counter()
    for i in range(0, len(evs), BATCH):
        ingest_objects(store, evs[i : i + BATCH])
    took = time.perf_counter() - t
    store.close()
    return len(evs) / took


def run_manager(url: str, n_runs: int) -> tuple[float, int]:
    store = build_pipeline(Settings(database_url=url), export=False).store
    rm = RunManager(store, project="bench", scenario="s", batch_size=2000, max_buffer=1_000_000)
    t = time.perf_counter()
    for i in range(n_runs):
        with rm.run(model="gpt-4o") as run:
            with run.llm() as s:
                s.set_usage(input_tokens=800, output_tokens=90)
            with run.tool("web_search"):
                pass
            with run.retrieval(tool="kb"):
                pass
            with run.llm() as s:
                s.set_usage(input_tokens=900, output_tokens=40)
    rm.close(timeout=600)
    took = time.perf_counter() - t
    n = rm.stats.written
    store.close()
    return n / took, n


def _inherited_rows(evs: list) -> list[dict]:
    """The rows the store would insert (children with their run's dimensions), pre-built for the baseline."""
    runs = {e.run_id: e for e in evs if e.kind == "run"}
    rows = []
    for e in evs:
        row = _row(e)
        run = runs.get(e.run_id)
        if e.kind != "run" and run is not None:
            for k in INHERITED:
                if row[k] is None:
                    row[k] = getattr(run, k)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is printed")
    ap.add_argument("--postgres", metavar="URL", help="also measure on this PostgreSQL database")
    args = ap.parse_args()

    evs = demo_events(args.events)
    rows = _inherited_rows([parse_event(e) for e in evs])
    bodies = [orjson.dumps(evs[i : i + BATCH]) for i in range(0, len(evs), BATCH)]
    n = len(evs)
    print(f"{n} demo events ({sum(e['kind'] == 'run' for e in evs)} runs), batches of {BATCH}, median of {args.repeat}")
    backends = ["sqlite"] + (["postgres"] if args.postgres else [])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for backend in backends:
            results: dict[str, list[float]] = {"raw": [], "http": [], "inproc": [], "rm": []}
            for _ in range(args.repeat):
                for name, fn in (
                    ("raw", lambda u: raw_insert(u, rows)),
                    ("http", lambda u: http_ingest(u, bodies, n)),
                    ("inproc", lambda u: in_process_ingest(u, evs)),
                    ("rm", lambda u: run_manager(u, n // 5)[0]),
                ):
                    url, drop = fresh_url(backend, tmp, args.postgres)
                    try:
                        results[name].append(fn(url))
                    finally:
                        drop()
            med = {k: statistics.median(v) for k, v in results.items()}
            print(f"\n[{backend}]")
            print(f"  raw insert (DBAPI executemany, same rows)  {med['raw']:>10,.0f} events/s   1.00")
            print(
                f"  batched HTTP POST /api/v1/events           {med['http']:>10,.0f} events/s   {med['http'] / med['raw']:.2f}"
            )
            print(
                f"  in-process ingest (validate + store)       {med['inproc']:>10,.0f} events/s   {med['inproc'] / med['raw']:.2f}"
            )
            print(
                f"  RunManager (record → flushed to store)     {med['rm']:>10,.0f} events/s   {med['rm'] / med['raw']:.2f}"
            )
            goal = "met" if med["http"] / med["raw"] >= 0.5 else "NOT met"
            print(f"  goal batched HTTP ≥ 0.5 × raw on SQLite: {goal}" if backend == "sqlite" else "")


if __name__ == "__main__":
    main()
