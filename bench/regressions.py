"""``GET /api/v1/regressions`` latency on the demo workload and at larger sizes.

Builds (and caches) SQLite databases through the real ingest path: the ``make demo`` workload
(seed 7, 14 days, 1,500 runs/day, about 167k events) and, with ``--sizes``, the 14-day demo
workload of bench/query.py at about that many events (``--db`` times any such database already
built, e.g. bench/query.py's cache). Times the regressions call through the Flask app (JSON
included) against a baseline measured in the same run on the same database: one
``/api/v1/metrics/summary`` grouped by project, scenario and model over the same 24 h. Prints
p50s of wall and CPU time (this process, every thread: SQLite runs in it), the ratio, where the
CPU time goes (the rollup reads, the analysis, the attribution reads and the rest), the load
average before and after, and the first findings (the demo's injected regression should be first).

On a shared machine wall time also counts other processes' work: the CPU time is the call's own
cost; wall ≈ CPU on an idle core (less when the reads overlap on two cores).

    .venv/bin/python bench/regressions.py                      # the demo database only
    .venv/bin/python bench/regressions.py --sizes 1M,10M       # plus bench/query.py's databases
    .venv/bin/python bench/regressions.py --db /tmp/hypermind-bench/demo-10M-seed11.db

Figures only, no timed asserts: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hypermindlabs.config import Settings  # noqa: E402
from hypermindlabs.wiring import build_pipeline  # noqa: E402

DEMO_END = datetime(2026, 1, 15, 0, 0, tzinfo=UTC)
REGRESSIONS = "/api/v1/regressions"
BASELINE = "/api/v1/metrics/summary?group_by=project,scenario,model"


def build_demo(path: Path) -> None:
    if path.exists():
        return
    from hypermindlabs.demo.load import load_demo

    print(f"  building {path.name} (make demo's workload) …", flush=True)
    pipeline = build_pipeline(Settings(database_url=f"sqlite:///{path}"), export=False)
    started = time.perf_counter()
    result = load_demo(pipeline.store, seed=7, days=14, runs_per_day=1500, end=DEMO_END, progress=False)
    pipeline.close()
    print(f"  {result.accepted:,} events in {time.perf_counter() - started:.0f} s", flush=True)


def timed(client, url: str, repeat: int) -> tuple[list[float], list[float], dict]:
    """Wall and CPU time per call (ms). CPU time (this process: SQLite runs in it) is what the
    call costs on an idle core; wall time on a shared machine also counts other processes."""
    client.get(url)  # warm the page cache and the statement caches
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        r = client.get(url)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        assert r.status_code == 200, r.get_json()
    return wall, cpu, r.get_json()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def stages(store, now_ns: int, repeat: int) -> dict[str, float]:
    """CPU p50 (ms) of each stage of the answer, called directly (no HTTP)."""
    from hypermindlabs.regressions import analyze
    from hypermindlabs.web import regressions as wr

    q = wr.parse_regressions_query({}, now_ns=now_ns)
    hours = (q.to_ns - q.from_ns) / 3.6e12
    out: dict[str, list[float]] = {"rollup reads": [], "analysis": [], "attribution reads": [], "whole answer": []}
    for _ in range(repeat):
        c = time.process_time()
        sources, _plan = wr.read_sources(store, q)
        out["rollup reads"].append((time.process_time() - c) * 1000)
        c = time.process_time()
        an = analyze(sources, params=q.params, current_hours=hours, metrics=q.metrics, dimensions=q.dimensions)
        out["analysis"].append((time.process_time() - c) * 1000)
        c = time.process_time()
        wr.attribution_counts(store, q, an.findings[:10], an.bin_ids)
        out["attribution reads"].append((time.process_time() - c) * 1000)
        c = time.process_time()
        wr.regressions(store, q)
        out["whole answer"].append((time.process_time() - c) * 1000)
    p50 = {k: statistics.median(v) for k, v in out.items()}
    p50["the rest (labels, rows)"] = p50["whole answer"] - p50["rollup reads"] - p50["analysis"] - p50[
        "attribution reads"
    ]
    return p50


def measure(path: Path, end: datetime, repeat: int, label: str) -> None:
    from hypermindlabs.web import create_app

    load_before = _load()
    pipeline = build_pipeline(Settings(database_url=f"sqlite:///{path}"))
    store = pipeline.store
    now_ns = int(end.timestamp()) * 10**9
    client = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: now_ns).test_client()
    events = store.count_events()
    base, base_cpu, _ = timed(client, BASELINE, repeat)
    reg, reg_cpu, body = timed(client, REGRESSIONS, repeat)
    parts = stages(store, now_ns, max(3, repeat // 2))
    pipeline.close()
    b, r = statistics.median(base), statistics.median(reg)
    bc, rc = statistics.median(base_cpu), statistics.median(reg_cpu)
    print(f"\n[{label}] {events:,} events, {path.stat().st_size / 1e6:,.0f} MB (SQLite, through the Flask app), "
          f"{repeat} timed calls each after one warm-up; load average (1/5/15 min) {load_before} before, "
          f"{_load()} after")  # fmt: skip
    print(f"  {'':<48}{'wall p50':>10}{'wall min':>10}{'cpu p50':>10}{'cpu min':>10}")
    print(f"  {'baseline: summary 24h by project,scenario,model':<48}{b:>10.1f}{min(base):>10.1f}{bc:>10.1f}"
          f"{min(base_cpu):>10.1f}")  # fmt: skip
    print(f"  {'regressions (defaults: 24 h vs 7 d)':<48}{r:>10.1f}{min(reg):>10.1f}{rc:>10.1f}{min(reg_cpu):>10.1f}")
    print(f"  ratio regressions / baseline: wall {r / b:.2f}, cpu {rc / bc:.2f}")
    print("  cpu p50 by stage (ms, called directly): " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    print(f"  {body['tests']} tests over {body['slices']} slices, {len(body['findings'])} findings")
    for i, f in enumerate(body["findings"][:3], 1):
        attr = ", ".join(a["label"] for a in f["attribution"][:2])
        print(f"  #{i} {f['metric']:<20} {f['slice']}  {f['baseline_value']:.3g} -> {f['current_value']:.3g}  "
              f"q={f['q_value']:.1e}  score={f['score']:.2f}  [{attr}]")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="", help="also bench/query.py's databases at these sizes (1M, 10M …)")
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "hypermind-bench-regressions"),
                    help="where built databases are cached (default: %(default)s)")  # fmt: skip
    ap.add_argument("--db", default="", help="also time these already built bench/query.py databases (comma list)")
    ap.add_argument("--repeat", type=int, default=10, help="timed runs per query (after one warm-up)")
    args = ap.parse_args()
    cache = Path(args.dir)
    cache.mkdir(parents=True, exist_ok=True)
    demo = cache / "make-demo-seed7.db"
    build_demo(demo)
    measure(demo, DEMO_END, args.repeat, "make demo")
    if args.sizes:
        import query  # bench/query.py: the same workload generator and cache layout

        for size in args.sizes.split(","):
            n = query.parse_size(size)
            path = cache / f"demo-{query.label(n)}-seed{query.SEED}.db"
            query.build(path, n)
            measure(path, query.END, args.repeat, query.label(n))
    for db in filter(None, args.db.split(",")):
        import query

        measure(Path(db), query.END, args.repeat, Path(db).name)


if __name__ == "__main__":
    main()
