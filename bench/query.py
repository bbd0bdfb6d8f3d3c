"""Metrics query latency against database size: the rollups should make it follow buckets, not events.

Builds SQLite databases of the demo workload (14 days) at each size through the real ingest path
(rollups maintained in the append transaction), caches them, then times dashboard queries through
the Flask app (JSON included) and prints p50 per size and the ratio largest / smallest.

    .venv/bin/python bench/query.py                          # 100k and 1M events
    .venv/bin/python bench/query.py --sizes 100k,1M,10M      # 10M: about half an hour to build
    .venv/bin/python bench/query.py --dir /var/tmp/hm-bench --repeat 50

Figures only, no timed asserts: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypermindlabs.config import Settings  # noqa: E402
from hypermindlabs.demo import demo_spec, generate_events  # noqa: E402
from hypermindlabs.ingest import ingest_objects  # noqa: E402
from hypermindlabs.wiring import build_pipeline  # noqa: E402

SEED = 11
DAYS = 14
# Deliberately off the minute: windows like now-24h then have edges every tier must serve.
END = datetime(2026, 1, 15, 0, 7, 13, tzinfo=UTC)
BATCH = 5000

QUERIES: list[tuple[str, str]] = [
    ("summary 24h (default)", "/api/v1/metrics/summary"),
    ("summary 14d", "/api/v1/metrics/summary?from=now-14d"),
    ("summary 14d by project", "/api/v1/metrics/summary?from=now-14d&group_by=project"),
    ("summary 24h project filter by model", "/api/v1/metrics/summary?project=acme-support&group_by=model"),
    ("summary 7d by tool used", "/api/v1/metrics/summary?from=now-7d&group_by=tool"),
    ("summary 7d one tag by error class", "/api/v1/metrics/summary?from=now-7d&tag.env=prod&group_by=error_class"),
    ("summary 24h two tags (full cube)", "/api/v1/metrics/summary?tag.env=prod&tag.tier=pro"),
    ("summary 14d tool steps by tool", "/api/v1/metrics/summary?from=now-14d&kind=tool&group_by=tool"),
    ("timeseries 24h (auto 15m)", "/api/v1/metrics/timeseries"),
    ("timeseries 14d (auto 3h)", "/api/v1/metrics/timeseries?from=now-14d"),
    ("timeseries 24h by project", "/api/v1/metrics/timeseries?group_by=project"),
    ("timeseries 1h (auto 1m)", "/api/v1/metrics/timeseries?from=now-1h"),
    ("timeseries 24h llm steps by model", "/api/v1/metrics/timeseries?kind=llm&group_by=model"),
]


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


def events_per_run() -> float:
    sample = list(generate_events(demo_spec(seed=SEED, end=END, days=2), runs_per_day=300))
    return len(sample) / sum(e["kind"] == "run" for e in sample)


def build(path: Path, n: int) -> dict:
    """Load about ``n`` demo events (14 days) through the ingest path, with rollups."""
    marker = path.with_suffix(".json")
    if path.exists() and marker.exists():
        return json.loads(marker.read_text())
    runs_per_day = max(1, round(n / DAYS / events_per_run()))
    store = build_pipeline(Settings(database_url=f"sqlite:///{path}"), export=False).store
    # A 1 GiB page cache for the build only (the default 2 MB makes every index insert of a
    # multi-GB database a read); queries are timed with the store's own settings.
    sa.event.listen(store.engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA cache_size=-1048576"))
    store.engine.dispose()
    # An interrupted build resumes: batches are transactions and the generator is deterministic.
    skip = stored = first = store.count_events()
    batch: list[dict] = []
    started = time.perf_counter()
    spec = demo_spec(seed=SEED, end=END, days=DAYS)
    print(f"  building {path.name}: {runs_per_day} runs/day{f', resuming after {skip:,} events' if skip else ''} …",
          flush=True)  # fmt: skip
    for ev in generate_events(spec, runs_per_day=runs_per_day):
        if skip:
            skip -= 1
            continue
        batch.append(ev)
        if len(batch) >= BATCH:
            stored += ingest_objects(store, batch).accepted
            batch = []
            if stored % 500_000 < BATCH:
                rate = (stored - first) / (time.perf_counter() - started)
                print(f"    {stored:>11,} events  {rate:,.0f} events/s", flush=True)
    if batch:
        stored += ingest_objects(store, batch).accepted
    took = time.perf_counter() - started
    store.close()
    info = {"events": stored, "runs_per_day": runs_per_day, "load_seconds": round(took, 1),
            "events_per_second": round((stored - first) / took), "resumed_after_events": first}  # fmt: skip
    marker.write_text(json.dumps(info))
    return info


def time_queries(path: Path, repeat: int) -> dict[str, list[float]]:
    from hypermindlabs.web import create_app

    pipeline = build_pipeline(Settings(database_url=f"sqlite:///{path}"))
    store = pipeline.store
    with store.engine.begin() as conn:  # databases cached before migration 0003 gained this index
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_rollup_slices_cube ON rollup_slices (level, cube)")
    now_ns = int(END.timestamp()) * 10**9
    client = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: now_ns).test_client()
    out: dict[str, list[float]] = {}
    for name, url in QUERIES:
        r = client.get(url)  # warm the page cache and the statement caches
        if r.status_code != 200:
            raise SystemExit(f"{name}: {r.status_code} {r.get_json()}")
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - t) * 1000)
        out[name] = times
    store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M", help="comma-separated event counts (100k, 1M, 10M …)")
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "hypermind-bench"),
                    help="where built databases are cached (default: %(default)s)")  # fmt: skip
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per query (after one warm-up)")
    args = ap.parse_args()

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    cache = Path(args.dir)
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, list[float]]] = {}
    for n in sizes:
        path = cache / f"demo-{label(n)}-seed{SEED}.db"
        info = build(path, n)
        size_mb = path.stat().st_size / 1e6
        print(f"[{label(n)}] {info['events']:,} events, {size_mb:,.0f} MB, loaded in {info['load_seconds']} s "
              f"({info['events_per_second']:,} events/s with rollups)", flush=True)  # fmt: skip
        results[n] = time_queries(path, args.repeat)

    head = "".join(f"{label(n):>10}" for n in sizes)
    ratio = f"{label(sizes[-1])}/{label(sizes[0])}" if len(sizes) > 1 else ""
    print(f"\np50 latency in ms (median of {args.repeat}), SQLite, through the Flask app")
    print(f"{'query':<40}{head}{ratio:>12}")
    for name, _ in QUERIES:
        p50 = [statistics.median(results[n][name]) for n in sizes]
        line = "".join(f"{v:>10.1f}" for v in p50)
        print(f"{name:<40}{line}{(p50[-1] / p50[0]) if len(sizes) > 1 else 0:>12.2f}")


if __name__ == "__main__":
    main()
