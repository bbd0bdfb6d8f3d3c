"""Ingest throughput: batched HTTP posts and RunManager vs the raw insert rate, as ratios.

All three paths write the same demo events into fresh databases of the same schema in the same
run, so the ratios hold on a shared, noisy machine where absolute figures do not.

    .venv/bin/python bench/ingest.py                 # SQLite, 60k events
    .venv/bin/python bench/ingest.py --events 200000 --postgres postgresql://postgres@127.0.0.1/test
    .venv/bin/python bench/ingest.py --events 30000 --only raw,http --postgres URL   # the goal's two paths
    .venv/bin/python bench/ingest.py --events 30000 --profile [--postgres URL]       # where a batch's time goes
    .venv/bin/python bench/ingest.py --events 200000 --only http --backends postgres --postgres URL  # flat per batch?

Batched HTTP also prints its per-batch times as the table grows (the first and last batches), so
"flat per batch" is measured, not assumed. ``--profile`` samples the ingest of every batch (what
``POST /api/v1/events`` runs: body split, validation, the store's append) with pyinstrument and
prints, per 5,000-event batch, the time and share of: parse, enrichment/triage, the events insert
and duplicate handling, rollup writes, export-view writes, commit; and how much of each is SQL.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databases import fresh_url  # noqa: E402  (bench/databases.py)

from hypermindlabs.config import Settings  # noqa: E402
from hypermindlabs.core.events import parse_event  # noqa: E402
from hypermindlabs.core.record import stored_event as _row  # noqa: E402
from hypermindlabs.core.vocabulary import INHERITED  # noqa: E402
from hypermindlabs.demo import demo_spec, generate_events  # noqa: E402
from hypermindlabs.ingest import ingest_objects  # noqa: E402
from hypermindlabs.sdk.run_manager import RunManager  # noqa: E402
from hypermindlabs.store.schema import events as events_table  # noqa: E402
from hypermindlabs.store.schema import tag_sets  # noqa: E402
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


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), None where that is unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_insert(url: str, rows: list[dict], cpu: list[float] | None = None) -> float:
    """The baseline: the same rows, pre-built, inserted with the DBAPI's executemany per batch.

    ``cpu`` gets the CPU seconds of the inserts: this process's (on SQLite all of the database's
    work), plus on PostgreSQL the database's backends'."""
    store = build_pipeline(Settings(database_url=url), export=False).store
    # The rows as the table holds them: tags as their set's id (store/tag_sets.py), the sets stored first.
    texts = sorted({r["tags"] for r in rows} - {"{}"})
    with store.engine.begin() as conn:
        conn.execute(tag_sets.insert(), [{"digest": hashlib.sha256(t.encode()).hexdigest(), "tags": t} for t in texts])
        ids = dict(conn.execute(sa.select(tag_sets.c.tags, tag_sets.c.id)).all())
    rows = [{**{k: v for k, v in r.items() if k != "tags"}, "tag_set": ids.get(r["tags"])} for r in rows]
    cols = list(rows[0].keys())
    sql = str(events_table.insert().compile(dialect=store.engine.dialect, column_keys=cols))
    params = [tuple(r[c] for c in cols) for r in rows] if store.dialect == "sqlite" else rows
    raw = store.engine.raw_connection()
    backends = _Backends(url) if store.dialect == "postgresql" else None
    b0 = backends.cpu_s() if backends else 0.0
    t = time.perf_counter()
    c0 = time.process_time()
    try:
        cur = raw.cursor()
        for i in range(0, len(params), BATCH):
            cur.executemany(sql, params[i : i + BATCH])
            raw.commit()
    finally:
        raw.close()
    took = time.perf_counter() - t
    if cpu is not None:
        theirs = (backends.cpu_s() or 0.0) - (b0 or 0.0) if backends else 0.0
        cpu.append(time.process_time() - c0 + theirs)
    if backends:
        backends.conn.close()
    store.close()
    return len(rows) / took


def http_ingest(url: str, bodies: list[bytes], n: int, per_batch: list[float] | None = None,
                per_batch_cpu: list[float] | None = None) -> float:  # fmt: skip
    """Batched POSTs to a fresh ``hypermind-obs serve``; per batch its wall time and the CPU time of
    the server process (on SQLite all of the database's work) plus, on PostgreSQL, that of the
    database's backends serving it (read from /proc: a server on this machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("hypermind-obs")
    proc = subprocess.Popen([str(exe), "serve", "--database-url", url, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    backends = _Backends(url) if url.startswith("postgresql") else None
    try:
        deadline = time.monotonic() + 300  # a start on a loaded machine (and PostgreSQL's migration) takes a while
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("hypermind-obs serve did not come up") from None
                time.sleep(0.1)
        session = requests.Session()

        def cpu_now() -> float | None:
            own = _cpu_s(proc.pid)
            if own is None or backends is None:
                return own
            theirs = backends.cpu_s()
            return None if theirs is None else own + theirs

        t = time.perf_counter()
        accepted = 0
        for body in bodies:
            b0 = time.perf_counter()
            cpu0 = cpu_now()
            r = session.post(
                f"{base}/api/v1/events", data=body, headers={"Content-Type": "application/json"}, timeout=600
            )
            r.raise_for_status()
            accepted += r.json()["accepted"]
            if per_batch is not None:
                per_batch.append(time.perf_counter() - b0)
            cpu1 = cpu_now()
            if per_batch_cpu is not None and cpu0 is not None and cpu1 is not None:
                per_batch_cpu.append(cpu1 - cpu0)
        took = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(10)
        if backends is not None:
            backends.conn.close()
    if accepted != n:
        raise SystemExit(f"HTTP path stored {accepted} of {n} events")
    return n / took


class _Backends:
    """CPU seconds of the PostgreSQL backends connected to the database of ``url`` (but this one)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url.split("?", 1)[0], autocommit=True)
        self.base: dict[int, float] = {}

    def cpu_s(self) -> float | None:
        pids = [r[0] for r in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )]  # fmt: skip
        total = 0.0
        for pid in pids:
            got = _cpu_s(pid)
            if got is None:
                return None
            total += got
        return total


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


_CATEGORIES = (
    ("parse", {("bodies.py", "split_body"), ("events.py", "parse_event")}),
    (
        "enrichment/triage",
        {
            ("report.py", "enrich"),
            ("attribution.py", "attribute_batch"),
            ("event_store.py", "_reenrich_failed_children"),
        },
    ),
    ("rollup writes", {("writer.py", "__call__")}),
    ("export-view writes", {("view.py", "__call__")}),
    ("events insert + duplicates", {("event_store.py", "_insert_events"), ("event_store.py", "_stored_events")}),
    ("commit", {("base.py", "commit")}),
)


def _category(frame: Any) -> str | None:
    key = (Path(frame.file_path or "").name, frame.function.rsplit(".", 1)[-1])
    for name, members in _CATEGORIES:
        if key in members:
            return name
    return None


_DRIVER_CALLS = {"execute", "executemany", "commit", "fetchall", "fetchone", "fetchmany"}


def _is_sql(frame: Any) -> bool:
    """A frame of the database driver (time in the database, or waiting on it)."""
    path = frame.file_path or ""
    if "psycopg" in path:
        return True
    return frame.function.rsplit(".", 1)[-1] in _DRIVER_CALLS and (path.startswith("<") or not path)


def profile(url: str, evs: list[dict], label: str) -> None:
    """Where the ingest of each 5,000-event batch spends its time (pyinstrument, sampled)."""
    from pyinstrument import Profiler

    from hypermindlabs.ingest import collector_paused, split_body

    store = build_pipeline(Settings(database_url=url)).store
    bodies = [orjson.dumps(evs[i : i + BATCH]) for i in range(0, len(evs), BATCH)]
    prof = Profiler(interval=0.001)
    t = time.perf_counter()
    prof.start()
    for body in bodies:  # what POST /api/v1/events runs on the body, without the HTTP server
        with collector_paused():
            ingest_objects(store, split_body(body, "application/json"))
    prof.stop()
    took = time.perf_counter() - t
    store.close()
    totals: dict[str, list[float]] = {}

    def walk(frame: Any, cat: str, sql: bool) -> None:
        cat = _category(frame) or cat
        sql = sql or _is_sql(frame)
        own = frame.time - sum(ch.time for ch in frame.children)
        slot = totals.setdefault(cat, [0.0, 0.0])
        slot[0] += own
        slot[1] += own if sql else 0.0
        for ch in frame.children:
            walk(ch, cat, sql)

    root = prof.last_session.root_frame()
    walk(root, "other", False)
    whole = sum(v[0] for v in totals.values())
    n_batches = len(bodies)
    print(f"\n[{label}] profile: {len(evs)} events in {n_batches} batches, {took:.1f} s wall "
          f"({took / n_batches * 1000:,.0f} ms per {BATCH:,}-event batch); CPU {prof.last_session.cpu_time:.1f} s")  # fmt: skip
    print(f"  {'part':<28} {'ms/batch':>9} {'share':>6} {'of which SQL':>13}")
    order = [name for name, _ in _CATEGORIES] + ["other"]
    for name in order:
        own, sql = totals.get(name, [0.0, 0.0])
        print(f"  {name:<28} {own / n_batches * 1000:>9,.0f} {own / whole:>6.0%} {sql / n_batches * 1000:>10,.0f} ms")
    print(f"  {'all SQL':<28} {sum(v[1] for v in totals.values()) / n_batches * 1000:>9,.0f} "
          f"{sum(v[1] for v in totals.values()) / whole:>6.0%}")  # fmt: skip


def _flatness(times: list[float]) -> str:
    k = max(1, min(3, len(times) // 3))
    first, last = statistics.mean(times[:k]), statistics.mean(times[-k:])
    return (f"per batch: first {k} {first * 1000:,.0f} ms, last {k} {last * 1000:,.0f} ms (last/first {last / first:.2f}); "
            f"all: {', '.join(f'{x * 1000:,.0f}' for x in times)} ms")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is printed")
    ap.add_argument("--postgres", metavar="URL", help="also measure on this PostgreSQL database")
    ap.add_argument("--only", default="raw,http,inproc,rm", help="paths to measure (raw,http,inproc,rm)")
    ap.add_argument("--profile", action="store_true", help="profile the ingest of every batch instead")
    ap.add_argument("--backends", default="sqlite,postgres",
                    help="which to measure (postgres only with --postgres)")  # fmt: skip
    args = ap.parse_args()

    evs = demo_events(args.events)
    n = len(evs)
    wanted = set(args.backends.split(","))
    backends = [b for b in ("sqlite", "postgres") if b in wanted and (b == "sqlite" or args.postgres)]
    if args.profile:
        with tempfile.TemporaryDirectory() as d:
            for backend in backends:
                url, drop = fresh_url(backend, Path(d), args.postgres)
                try:
                    profile(url, evs, backend)
                finally:
                    drop()
        return
    rows = _inherited_rows([parse_event(e) for e in evs])
    bodies = [orjson.dumps(evs[i : i + BATCH]) for i in range(0, len(evs), BATCH)]
    only = set(args.only.split(","))
    print(f"{n} demo events ({sum(e['kind'] == 'run' for e in evs)} runs), batches of {BATCH}, median of {args.repeat}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for backend in backends:
            results: dict[str, list[float]] = {"raw": [], "http": [], "inproc": [], "rm": []}
            batch_times: list[list[float]] = []
            batch_cpu: list[list[float]] = []
            raw_cpu: list[float] = []
            for _ in range(args.repeat):
                for name, fn in (
                    ("raw", lambda u, cpu=raw_cpu: raw_insert(u, rows, cpu)),
                    ("http", lambda u, t=batch_times, c=batch_cpu: http_ingest(u, bodies, n, t[-1], c[-1])),
                    ("inproc", lambda u: in_process_ingest(u, evs)),
                    ("rm", lambda u: run_manager(u, n // 5)[0]),
                ):
                    if name not in only:
                        continue
                    if name == "http":
                        batch_times.append([])
                        batch_cpu.append([])
                    url, drop = fresh_url(backend, tmp, args.postgres)
                    try:
                        results[name].append(fn(url))
                    finally:
                        drop()
            med = {k: statistics.median(v) for k, v in results.items() if v}
            print(f"\n[{backend}]")
            if "raw" in med:
                print(f"  raw insert (DBAPI executemany, same rows)  {med['raw']:>10,.0f} events/s   1.00")
            for key, title in (("http", "batched HTTP POST /api/v1/events    "),
                               ("inproc", "in-process ingest (validate + store) "),
                               ("rm", "RunManager (record → flushed to store)")):  # fmt: skip
                if key in med:
                    ratio = f"{med[key] / med['raw']:.2f}" if "raw" in med else "-"
                    print(f"  {title}       {med[key]:>10,.0f} events/s   {ratio}")
            for i, times in enumerate(batch_times):
                print(f"  HTTP run {i + 1} {_flatness(times[: n // BATCH] or times)}")  # full batches only
            for i, cpu in enumerate(batch_cpu):
                if cpu:
                    print(f"  HTTP run {i + 1} server CPU {_flatness(cpu[: n // BATCH] or cpu)}")
            # CPU seconds are what the load does not stretch: the same ratio in CPU per event (both
            # sides hold all of the database's work: SQLite's in the process, PostgreSQL's backends).
            if raw_cpu and batch_cpu and all(batch_cpu):
                raw_us = statistics.median(raw_cpu) / n * 1e6
                http_us = statistics.median(sum(c) for c in batch_cpu) / n * 1e6
                print(f"  CPU per event: raw insert {raw_us:.1f} µs, HTTP server {http_us:.1f} µs "
                      f"(raw/HTTP {raw_us / http_us:.2f})")  # fmt: skip
            if "raw" in med and "http" in med:
                goal = 0.5 if backend == "sqlite" else 0.3
                met = "met" if med["http"] / med["raw"] >= goal else "NOT met"
                print(f"  goal batched HTTP ≥ {goal} × raw on {backend}: {met} ({med['http'] / med['raw']:.2f})")


if __name__ == "__main__":
    main()
