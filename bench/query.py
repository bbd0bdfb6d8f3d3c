"""Metrics query latency against database size: the rollups should make it follow buckets, not events.

Builds SQLite databases of the demo workload (14 days) at each size through the real ingest path
(rollups maintained in the append transaction), caches them, then times dashboard queries through
the Flask app (JSON included) and prints p50 per size and the ratio largest / smallest; then the run list (limit 1000, with
the tool, cluster and tag filters) and every drill-down (each runs_url of a few answers).

    .venv/bin/python bench/query.py                          # 100k and 1M events
    .venv/bin/python bench/query.py --sizes 100k,1M,10M      # 10M: about half an hour to build
    .venv/bin/python bench/query.py --dir /var/tmp/hm-bench --repeat 50
    .venv/bin/python bench/query.py --sizes 1M --postgres postgresql://postgres@127.0.0.1/test
        # also builds hm_bench_1m on that server and times every query on both, in turns: PG/SQLite

Figures only, no timed asserts: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
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
# Events per ingest transaction while building (`hypermind-obs ingest --batch-size`): a batch writes
# each rollup cell it touches once, so bigger batches merge more (at the 10M density, in process:
# 5,000 → 101–110 µs CPU per event, 20,000 → 81–95, 50,000 → 81–89).
BATCH = 20_000

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


# The run list (the drill-down target of every number), with and without the filters that read
# step events; {cluster} is the busiest failure cluster of the last 7 days.
RUN_QUERIES: list[tuple[str, str]] = [
    ("runs 7d limit 1000", "/api/v1/runs?from=now-7d&limit=1000"),
    ("runs 7d limit 1000 tool=crm_update", "/api/v1/runs?from=now-7d&limit=1000&tool=crm_update"),
    ("runs 7d limit 1000 cluster=top", "/api/v1/runs?from=now-7d&limit=1000&cluster={cluster}"),
    ("runs 7d limit 1000 tag.env=prod", "/api/v1/runs?from=now-7d&limit=1000&tag.env=prod"),
]
# Drill-downs: every runs_url of these answers is followed (the first page, as the UI does).
DRILL_SOURCES: list[str] = [
    "/api/v1/metrics/summary?from=now-7d&group_by=tool",
    "/api/v1/metrics/summary?from=now-7d&tag.env=prod&group_by=error_class",
    "/api/v1/failures/clusters?from=now-7d",
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


def build(path: Path, n: int, url: str | None = None) -> dict:
    """Load about ``n`` demo events (14 days) through the ingest path, with rollups.

    Into the SQLite file ``path``, or into the PostgreSQL database ``url`` (then ``path`` names
    only the ``.json`` marker that says the build is complete)."""
    marker = path.with_suffix(".json")
    if (url or path.exists()) and marker.exists():
        return json.loads(marker.read_text())
    runs_per_day = max(1, round(n / DAYS / events_per_run()))
    store = build_pipeline(Settings(database_url=url or f"sqlite:///{path}"), export=False).store
    if url is None:
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
    if url is not None:  # fresh statistics for the planner, and the visibility map for index-only scans
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    store.close()
    info = {"events": stored, "runs_per_day": runs_per_day, "load_seconds": round(took, 1),
            "events_per_second": round((stored - first) / took), "resumed_after_events": first}  # fmt: skip
    marker.write_text(json.dumps(info))
    return info


def pg_database(server: str, n: int) -> str:
    """The URL of this size's own bench database on the PostgreSQL server ``server`` (created if missing).

    One database per size (``hm_bench_1m`` …), kept between runs like the SQLite files; nothing
    else on the server is touched."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"hm_bench_{label(n).lower()}"
    with psycopg.connect(server, autocommit=True) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            c.execute(f'CREATE DATABASE "{name}"')
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def time_queries(path: Path, repeat: int, duck: dict[str, dict] | None = None) -> dict[str, list[float]]:
    from hypermindlabs.web import create_app

    # The failure-clusters report (a drill source, and the cluster filter's value) reads raw
    # events and outgrows the default 10 s read deadline at 1M: the bench lifts the deadline.
    pipeline = build_pipeline(Settings(database_url=f"sqlite:///{path}", query_timeout_ms=600_000))
    store = pipeline.store
    with store.engine.begin() as conn:  # databases cached before migration 0003 gained this index
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_rollup_slices_cube ON rollup_slices (level, cube)")
    now_ns = int(END.timestamp()) * 10**9
    client = create_app(Settings(database_url="unused", query_timeout_ms=600_000), pipeline=pipeline,
                        clock=lambda: now_ns).test_client()
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
    t = time.perf_counter()
    clusters = client.get("/api/v1/failures/clusters?from=now-7d").get_json()["clusters"]
    print(f"  failure clusters report 7d (raw events, not rollups): {(time.perf_counter() - t) * 1000:,.0f} ms",
          flush=True)  # fmt: skip
    fill = {"cluster": clusters[0]["cluster_id"] if clusters else "none"}
    for name, url in RUN_QUERIES:
        out[name] = _timed(client, url.format(**fill), max(3, repeat // 4))
    drills = [u for src in DRILL_SOURCES for u in _runs_urls(client.get(src).get_json())]
    medians = [statistics.median(_timed(client, u, 3)) for u in drills]
    print(f"  following {len(drills)} runs_urls (drill-downs); the slowest:", flush=True)
    for ms, u in sorted(zip(medians, drills, strict=True), reverse=True)[:3]:
        print(f"    {ms:8.1f} ms  {u}", flush=True)
    out["drill-downs: median runs_url"] = [statistics.median(medians)] if medians else [0.0]
    out["drill-downs: slowest runs_url"] = [max(medians)] if medians else [0.0]
    if duck is not None:
        import duckdb_compare

        t = time.perf_counter()
        con = duckdb_compare.load(path)
        print(f"  loaded the events into DuckDB in {time.perf_counter() - t:.0f} s", flush=True)
        for name, url in QUERIES:
            if name in duckdb_compare.COMPARABLE:
                duck[name] = duckdb_compare.compare(con, client, name, url, repeat)
        con.close()
    store.close()
    return out


def _timed(client, url: str, repeat: int) -> list[float]:
    r = client.get(url)
    if r.status_code != 200:
        raise SystemExit(f"{url}: {r.status_code} {r.get_json()}")
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - t) * 1000)
    return times


def _runs_urls(doc: object) -> list[str]:
    """Every ``runs_url`` anywhere in an answer."""
    if isinstance(doc, dict):
        own = [doc["runs_url"]] if isinstance(doc.get("runs_url"), str) else []
        return own + [u for k, v in doc.items() if k != "runs_url" for u in _runs_urls(v)]
    if isinstance(doc, list):
        return [u for v in doc for u in _runs_urls(v)]
    return []


def bytes_per_event(path: Path, events: int) -> dict[str, float]:
    """Live bytes per stored event (SQLite ``dbstat``), by table with its indexes, and in total."""
    con = sa.create_engine(f"sqlite:///{path}").connect()
    rows = con.exec_driver_sql(
        "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize - d.unused) FROM dbstat d "
        "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
    ).all()
    con.close()
    out = {name: b / events for name, b in rows}
    groups = {"events": ["events"], "rollups": [n for n in out if n.startswith("rollup_")],
              "run_tags": ["run_tags"]}  # fmt: skip
    summary = {g: sum(out.get(n, 0.0) for n in names) for g, names in groups.items()}
    summary["other"] = sum(out.values()) - sum(summary.values())
    summary["total"] = sum(out.values())
    return summary


def time_postgres(server: str, cache: Path, n: int, sqlite_info: dict, repeat: int) -> dict[str, dict[str, float]]:
    """The same workload at size ``n`` built (cached, resumable) on PostgreSQL, then every query
    timed on both databases in turns (SQLite, PostgreSQL, PostgreSQL, SQLite …), so both see the
    same machine load; each answer compared between the two."""
    from hypermindlabs.web import create_app

    url = pg_database(server, n)
    info = build(cache / f"pg-demo-{label(n)}-seed{SEED}.db", n, url)
    if info["events"] != sqlite_info["events"]:
        raise SystemExit(f"PostgreSQL holds {info['events']:,} events, SQLite {sqlite_info['events']:,}")
    pipes = {kind: build_pipeline(Settings(database_url=u, query_timeout_ms=600_000))
             for kind, u in (("sqlite", f"sqlite:///{cache / f'demo-{label(n)}-seed{SEED}.db'}"), ("pg", url))}  # fmt: skip
    # CPU time of a PostgreSQL answer: this process's and its server backends' (/proc schedstat, ns).
    backends: list[int] = []
    sa.event.listen(pipes["pg"].store.engine, "connect", lambda dbapi, _: backends.append(dbapi.info.backend_pid))
    pipes["pg"].store.engine.dispose()
    # Opening the pipeline migrated the database (a layout change recomputes every rollup cell):
    # fresh statistics and visibility map before timing, as after the build.
    with pipes["pg"].store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
        mb = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one() / 1e6
    print(f"[{label(n)} PostgreSQL] {url}: {info['events']:,} events, {mb:,.0f} MB, loaded in "
          f"{info['load_seconds']} s ({info['events_per_second']:,} events/s with rollups)", flush=True)  # fmt: skip

    def server_ns() -> int:
        total = 0
        for pid in backends:
            try:
                total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):  # another host, or no schedstat
                pass
        return total

    now_ns = int(END.timestamp()) * 10**9
    clients = {kind: create_app(Settings(database_url="unused", query_timeout_ms=600_000), pipeline=p,
                                clock=lambda: now_ns).test_client() for kind, p in pipes.items()}  # fmt: skip
    samples: dict[str, dict[str, list[float]]] = {}
    mismatched: list[str] = []

    def measure(name: str, target: str, times: int) -> None:
        answers = {k: c.get(target) for k, c in clients.items()}  # warm-up, and the two answers
        for kind, r in answers.items():
            if r.status_code != 200:
                raise SystemExit(f"{kind} {name}: {r.status_code} {r.get_json()}")
        if answers["sqlite"].get_json() != answers["pg"].get_json():
            mismatched.append(name)
        got = samples.setdefault(name, {"sqlite": [], "pg": [], "sqlite_cpu": [], "pg_cpu": []})
        for i in range(times):
            for kind in ("sqlite", "pg") if i % 2 == 0 else ("pg", "sqlite"):
                w, c, srv = time.perf_counter(), time.process_time(), server_ns()
                clients[kind].get(target)
                got[kind].append((time.perf_counter() - w) * 1000)
                got[f"{kind}_cpu"].append((time.process_time() - c) * 1000 + (server_ns() - srv) / 1e6)

    for name, target in QUERIES:
        measure(name, target, repeat)
    clusters = clients["sqlite"].get("/api/v1/failures/clusters?from=now-7d").get_json()["clusters"]
    fill = {"cluster": clusters[0]["cluster_id"] if clusters else "none"}
    for name, target in RUN_QUERIES:
        measure(name, target.format(**fill), max(3, repeat // 4))
    drills = [u for src in DRILL_SOURCES for u in _runs_urls(clients["sqlite"].get(src).get_json())]
    per_drill = {}
    for u in drills:
        measure(u, u, 3)
        per_drill[u] = samples.pop(u)
    out = {name: {k: statistics.median(v) for k, v in got.items()} for name, got in samples.items()}
    if per_drill:
        ranked = sorted(per_drill.values(), key=lambda g: statistics.median(g["sqlite"]))
        for label_, g in (("median", ranked[len(ranked) // 2]), ("slowest", ranked[-1])):
            out[f"drill-downs: {label_} runs_url (by SQLite)"] = {k: statistics.median(v) for k, v in g.items()}
        ratios = sorted(statistics.median(g["pg"]) / statistics.median(g["sqlite"]) for g in per_drill.values())
        print(f"  {len(drills)} drill-downs: PG/SQLite median {ratios[len(ratios) // 2]:.2f}, worst {ratios[-1]:.2f}")
    print(f"  answers equal on both databases: {len(QUERIES) + len(RUN_QUERIES) + len(drills) - len(mismatched)} "
          f"of {len(QUERIES) + len(RUN_QUERIES) + len(drills)}" + (f"; differ: {mismatched}" if mismatched else ""))  # fmt: skip
    for p in pipes.values():
        p.store.close()
    return out


def print_postgres(n: int, pg: dict[str, dict[str, float]], repeat: int) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n[{label(n)}] PostgreSQL vs SQLite, p50 ms of {repeat} turns each (the run list and drill-downs "
          f"fewer); CPU = this process + the PostgreSQL backends; load average {load}")  # fmt: skip
    print(f"{'query':<44}{'SQLite':>9}{'PG':>9}{'PG/SQLite':>11}{'CPU SQLite':>12}{'CPU PG':>9}{'CPU PG/SQLite':>15}")
    within = within_cpu = 0
    for name, m in pg.items():
        wall, cpu = m["pg"] / m["sqlite"], m["pg_cpu"] / m["sqlite_cpu"]
        if any(name == q for q, _ in QUERIES):
            within += wall <= 2
            within_cpu += cpu <= 2
        print(f"{name[:43]:<44}{m['sqlite']:>9.1f}{m['pg']:>9.1f}{wall:>11.2f}{m['sqlite_cpu']:>12.1f}"
              f"{m['pg_cpu']:>9.1f}{cpu:>15.2f}")  # fmt: skip
    print(f"{within} of {len(QUERIES)} dashboard queries ≤ 2× SQLite on PostgreSQL by wall time, "
          f"{within_cpu} by CPU time")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M", help="comma-separated event counts (100k, 1M, 10M …)")
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "hypermind-bench"),
                    help="where built databases are cached (default: %(default)s)")  # fmt: skip
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per query (after one warm-up)")
    ap.add_argument("--duckdb", action="store_true", help="also answer the comparable queries with DuckDB (.[bench])")
    ap.add_argument("--postgres", metavar="URL",
                    help="also build each size into its own database on this PostgreSQL server "
                    "(hm_bench_100k, hm_bench_1m …) and time the same queries there")  # fmt: skip
    args = ap.parse_args()

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    cache = Path(args.dir)
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, list[float]]] = {}
    ducks: dict[int, dict[str, dict] | None] = {}
    pg: dict[int, dict[str, dict[str, float]]] = {}
    for n in sizes:
        path = cache / f"demo-{label(n)}-seed{SEED}.db"
        info = build(path, n)
        size_mb = path.stat().st_size / 1e6
        print(f"[{label(n)}] {info['events']:,} events, {size_mb:,.0f} MB, loaded in {info['load_seconds']} s "
              f"({info['events_per_second']:,} events/s with rollups)", flush=True)  # fmt: skip
        sizes_b = bytes_per_event(path, info["events"])
        print("  bytes per stored event (live pages, table + its indexes): "
              + ", ".join(f"{k} {v:.0f}" for k, v in sizes_b.items()), flush=True)  # fmt: skip
        ducks[n] = {} if args.duckdb else None
        results[n] = time_queries(path, args.repeat, ducks[n])
        for name, times in results[n].items():
            print(f"  {name:<40}{statistics.median(times):>10.1f} ms", flush=True)
        if args.postgres:
            pg[n] = time_postgres(args.postgres, cache, n, info, args.repeat)
        for name, d in (ducks[n] or {}).items():
            print(f"  duckdb {name:<33}{d['duckdb_ms']:>10.1f} ms  q error {d['quantile_error']:.2%}  "
                  f"counts {'equal' if d['counts_equal'] else 'DIFFER'}", flush=True)  # fmt: skip

    head = "".join(f"{label(n):>10}" for n in sizes)
    ratio = f"{label(sizes[-1])}/{label(sizes[0])}" if len(sizes) > 1 else ""
    print(f"\np50 latency in ms (median of {args.repeat}), SQLite, through the Flask app")
    print(f"{'query':<40}{head}{ratio:>12}")
    for name in results[sizes[0]]:
        p50 = [statistics.median(results[n].get(name, [float("nan")])) for n in sizes]
        line = "".join(f"{v:>10.1f}" for v in p50)
        print(f"{name:<40}{line}{(p50[-1] / p50[0]) if len(sizes) > 1 else 0:>12.2f}")

    for n in sizes:
        if not ducks.get(n):
            continue
        print(f"\n[{label(n)}] API vs DuckDB (one thread, raw events, exact quantile_disc), p50 ms")
        print(f"{'query':<40}{'API':>10}{'DuckDB':>10}{'DuckDB/API':>12}{'q error':>10}{'counts':>8}{'groups':>8}")
        for name, d in ducks[n].items():
            api = statistics.median(results[n][name])
            print(f"{name:<40}{api:>10.1f}{d['duckdb_ms']:>10.1f}{d['duckdb_ms'] / api:>12.2f}"
                  f"{d['quantile_error']:>9.2%}{'equal' if d['counts_equal'] else 'DIFFER':>8}{d['groups']:>8}")  # fmt: skip
    for n in pg:
        print_postgres(n, pg[n], args.repeat)
    if len(sizes) > 1:
        growth = [statistics.median(results[sizes[-1]][name]) / statistics.median(results[sizes[-2]][name])
                  for name, _ in QUERIES]  # fmt: skip
        gm = statistics.geometric_mean(growth)
        print(f"\ngrowth {label(sizes[-2])} -> {label(sizes[-1])}, geometric mean over the dashboard queries: {gm:.2f}x")


if __name__ == "__main__":
    main()
