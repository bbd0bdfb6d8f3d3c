"""``GET /api/v1/regressions`` latency on the demo workload and at larger sizes.

Builds (and caches) SQLite databases through the real ingest path: the ``make demo`` workload
(seed 7, 14 days, 1,500 runs/day, about 167k events) and, with ``--sizes``, the 14-day demo
workload of bench/query.py at about that many events. Times the regressions call through the
Flask app (JSON included) against a baseline measured in the same run on the same database: one
``/api/v1/metrics/summary`` grouped by project, scenario and model over the same 24 h. Prints
p50s, the ratio, and the first finding (the demo's injected regression should be first).

    .venv/bin/python bench/regressions.py                      # the demo database only
    .venv/bin/python bench/regressions.py --sizes 1M,10M       # plus bench/query.py's databases

Figures only, no timed asserts: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
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
    body = client.get(url).get_json()  # warm the page cache and the statement caches
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        r = client.get(url)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        assert r.status_code == 200, r.get_json()
    return wall, cpu, body


def measure(path: Path, end: datetime, repeat: int, label: str) -> None:
    from hypermindlabs.web import create_app

    pipeline = build_pipeline(Settings(database_url=f"sqlite:///{path}"))
    store = pipeline.store
    now_ns = int(end.timestamp()) * 10**9
    client = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: now_ns).test_client()
    events = store.count_events()
    base, base_cpu, _ = timed(client, BASELINE, repeat)
    reg, reg_cpu, body = timed(client, REGRESSIONS, repeat)
    pipeline.close()
    b, r = statistics.median(base), statistics.median(reg)
    bc, rc = statistics.median(base_cpu), statistics.median(reg_cpu)
    print(f"\n[{label}] {events:,} events, {path.stat().st_size / 1e6:,.0f} MB (SQLite, through the Flask app)")
    print(f"  {'':<48}{'wall p50':>10}{'wall min':>10}{'cpu p50':>10}")
    print(f"  {'baseline: summary 24h by project,scenario,model':<48}{b:>10.1f}{min(base):>10.1f}{bc:>10.1f}")
    print(f"  {'regressions (defaults: 24 h vs 7 d)':<48}{r:>10.1f}{min(reg):>10.1f}{rc:>10.1f}")
    print(f"  ratio regressions / baseline: wall {r / b:.2f}, cpu {rc / bc:.2f}")
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


if __name__ == "__main__":
    main()
