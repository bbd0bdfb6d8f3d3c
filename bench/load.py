"""Sustained load on loopback: concurrent batched ingest and dashboard reads against a real
``hypermind-obs serve`` with 1, 2 and 4 workers, on SQLite and PostgreSQL (issue #15 item 5).

For each database and worker count: a fresh database preloaded with two days of the demo workload
(so the reads have something to scan), then ``--writers`` threads POST ``--batch``-event batches
back to back and ``--readers`` threads cycle through the dashboard's reads, for ``--duration``
seconds. Printed: requests/s, events/s, p50/p99 per endpoint, errors (any non-2xx or transport
error), and the check that events stored == events acknowledged (counted in the database after
the server stops). The ratio column is each configuration's events/s over the 1-worker figure of
the same database in the same run. Rate limits are switched off for the measurement (the default
limits would answer the back-to-back readers 429; see docs/operations.md).

    nice -n 10 .venv/bin/python bench/load.py                                   # 60 s × 1,2,4 workers × both
    nice -n 10 .venv/bin/python bench/load.py --duration 20 --workers 1 --databases sqlite
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databases import fresh_url  # noqa: E402  (bench/databases.py)

from hypermindlabs.config import Settings  # noqa: E402
from hypermindlabs.demo import demo_spec, generate_events  # noqa: E402
from hypermindlabs.ingest import ingest_objects  # noqa: E402
from hypermindlabs.wiring import build_pipeline  # noqa: E402

PG_DEFAULT = os.environ.get("HYPERMIND_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
READS = {
    "summary": "/api/v1/metrics/summary?from=now-24h&group_by=model",
    "timeseries": "/api/v1/metrics/timeseries?from=now-24h&step=1h",
    "runs": "/api/v1/runs?from=now-24h&limit=50",
    "clusters": "/api/v1/failures/clusters?from=now-24h&limit=20",
    "regressions": "/api/v1/regressions?from=now-24h",
    "metrics": "/metrics",
}


def _events(seed: int, prefix: str, runs_per_day: int, days: int = 2):
    spec = demo_spec(seed=seed, end=datetime.now(UTC), days=days)
    for ev in generate_events(spec, runs_per_day=runs_per_day):
        ev["run_id"] = f"{prefix}{ev['run_id']}"
        if "event_id" in ev:
            ev["event_id"] = f"{prefix}{ev['event_id']}"
        yield ev


def preload(url: str, runs_per_day: int) -> int:
    pipeline = build_pipeline(Settings(database_url=url))
    n, batch = 0, []
    for ev in _events(3, "pre-", runs_per_day):
        batch.append(ev)
        if len(batch) == 5000:
            n += ingest_objects(pipeline.store, batch).accepted
            batch = []
    if batch:
        n += ingest_objects(pipeline.store, batch).accepted
    pipeline.close()
    return n


def stored_events(url: str) -> int:
    pipeline = build_pipeline(Settings(database_url=url), export=False)
    try:
        return pipeline.store.count_events()
    finally:
        pipeline.close()


def serve(url: str, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    off = {f"HYPERMIND_RATE_LIMIT_{g}_PER_{p}": "off" for g in ("INGEST", "READ") for p in ("TOKEN", "ADDRESS")}
    env = {**os.environ, **off, "HYPERMIND_DATABASE_URL": url}
    exe = Path(sys.executable).with_name("hypermind-obs")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--workers", str(workers)], env=env,
                            stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                time.sleep(1.0 if workers > 1 else 0)  # every worker booted
                return proc, base
        except requests.RequestException:  # not listening yet, or too busy booting to answer
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL to the whole process group (gunicorn's workers too) after 60 s."""
    import signal

    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.codes: dict[str, int] = defaultdict(int)
        self.acknowledged = 0

    def add(self, name: str, seconds: float, code: int, accepted: int = 0) -> None:
        """``code``: the HTTP status, 0 for a transport error."""
        with self.lock:
            self.latency[name].append(seconds)
            if not 200 <= code < 300:
                self.errors[name] += 1
                self.codes[f"{name} {code or 'transport'}"] += 1
            self.acknowledged += accepted


def writer(base: str, k: int, batch: int, stop: threading.Event, stats: Stats) -> None:
    session = requests.Session()
    source = _events(100 + k, f"w{k}-{uuid.uuid4().hex[:6]}-", runs_per_day=200_000, days=1)
    while not stop.is_set():
        evs = [next(source) for _ in range(batch)]
        body = orjson.dumps(evs)
        t = time.perf_counter()
        try:
            r = session.post(f"{base}/api/v1/events", data=body, headers={"Content-Type": "application/json"},
                             timeout=120)  # fmt: skip
            code = r.status_code
            accepted = r.json().get("accepted", 0) if code in (200, 207) else 0
        except requests.RequestException:
            code, accepted = 0, 0
        stats.add("POST events", time.perf_counter() - t, code, accepted)


def reader(base: str, k: int, stop: threading.Event, stats: Stats) -> None:
    session = requests.Session()
    names = list(READS)
    i = k
    while not stop.is_set():
        name = names[i % len(names)]
        i += 1
        t = time.perf_counter()
        try:
            code = session.get(base + READS[name], timeout=120).status_code
        except requests.RequestException:
            code = 0
        stats.add(f"GET {name}", time.perf_counter() - t, code)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))] * 1000  # nearest rank, ms


def measure(kind: str, workers: int, args, tmp: Path) -> dict:
    url, drop = fresh_url(kind, tmp, args.postgres, prefix="load")
    try:
        pre = preload(url, args.preload_runs_per_day)
        proc, base = serve(url, workers, tmp / f"serve-{kind}-{workers}.log")
        stats, stop = Stats(), threading.Event()
        threads = [threading.Thread(target=writer, args=(base, k, args.batch, stop, stats)) for k in range(args.writers)]
        threads += [threading.Thread(target=reader, args=(base, k, stop, stats)) for k in range(args.readers)]
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.duration)
        stop.set()
        for t in threads:
            t.join(180)
        took = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
        stop_server(proc)
        stored = stored_events(url) - pre
    finally:
        drop()
    requests_n = sum(len(v) for v in stats.latency.values())
    return {"db": kind, "workers": workers, "seconds": took, "req_s": requests_n / took,
            "events_s": stats.acknowledged / took, "acknowledged": stats.acknowledged, "stored": stored,
            "errors": sum(stats.errors.values()), "codes": dict(stats.codes), "load": (load0, load1),
            "endpoints": {k: (len(v), pct(v, 0.5), pct(v, 0.99), stats.errors[k]) for k, v in sorted(stats.latency.items())}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load per configuration (default 60)")
    ap.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    ap.add_argument("--databases", default="sqlite,postgres", help="sqlite and/or postgres")
    ap.add_argument("--postgres", default=PG_DEFAULT, help=f"PostgreSQL database (a schema per run; default {PG_DEFAULT})")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=500, help="events per POST (default 500)")
    ap.add_argument("--preload-runs-per-day", type=int, default=1000, help="demo runs per day, two days (default 1000)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as d:
        for kind in args.databases.split(","):
            for w in (int(x) for x in args.workers.split(",")):
                r = measure(kind, w, args, Path(d))
                results.append(r)
                print(f"{kind} workers={w}: {r['req_s']:.1f} req/s, {r['events_s']:.0f} events/s, errors {r['errors']}, "
                      f"stored {r['stored']} == acknowledged {r['acknowledged']}: {r['stored'] == r['acknowledged']}, "
                      f"load {r['load'][0]:.1f}→{r['load'][1]:.1f}; errors by status: {r['codes'] or 'none'}", flush=True)  # fmt: skip
    base = {r["db"]: r["events_s"] for r in results if r["workers"] == min(int(x) for x in args.workers.split(","))}
    print(f"\n{args.writers} writers × {args.batch}-event batches + {args.readers} readers, {args.duration:.0f} s each\n")
    print("| db | workers | req/s | events/s | × 1 worker | errors | stored == acked | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['db']} | {r['workers']} | {r['req_s']:.1f} | {r['events_s']:,.0f} | "
              f"{r['events_s'] / base[r['db']]:.2f} | {r['errors']} | "
              f"{r['stored']:,} == {r['acknowledged']:,} {'yes' if r['stored'] == r['acknowledged'] else 'NO'} | "
              f"{r['load'][0]:.1f}→{r['load'][1]:.1f} |")  # fmt: skip
    print("\np50 / p99 ms per endpoint (requests, errors)\n")
    names = sorted({k for r in results for k in r["endpoints"]})
    print("| db | workers | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for r in results:
        cells = []
        for n in names:
            if n in r["endpoints"]:
                cnt, p50, p99, err = r["endpoints"][n]
                cells.append(f"{p50:.0f} / {p99:.0f} ({cnt}{', ' + str(err) + ' err' if err else ''})")
            else:
                cells.append("–")
        print(f"| {r['db']} | {r['workers']} | " + " | ".join(cells) + " |")
    if any(r["stored"] != r["acknowledged"] for r in results):
        raise SystemExit("events stored != events acknowledged")


if __name__ == "__main__":
    main()
