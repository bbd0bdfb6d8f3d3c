"""The rollup facts of a batch in memory: ``add_run`` + ``Accumulator.nonzero()``, CPU per event.

The part of the append hook that is pure Python and grows with the store's density: at the 10M
bench density a 20,000-event batch (2,500 runs) covers 40 minutes, so many facts share a cell. The
demo workload of bench/query.py (seed 11) at the density of each ``--sizes`` entry (events spread
over 14 days), 100,000 events of it, run through in 2,500-run batches, no database.

With ``--base DIR`` (another checkout, e.g. ``git worktree add /tmp/base main~1``) the same facts
also go through that checkout's ``hypermindlabs/rollups/facts.py``, in alternating rounds (this
machine is shared and noisy: only ratios of the same run mean anything), and the cells of the
two are checked equal.

    .venv/bin/python bench/accumulate.py                            # 100k, 1M and 10M densities
    .venv/bin/python bench/accumulate.py --base /tmp/base --rounds 5

Figures only, no timed asserts.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import itertools
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import query as q  # noqa: E402  (bench/query.py: the workload and its sizes)

from hypermindlabs.core.events import parse_event  # noqa: E402
from hypermindlabs.core.record import stored_event  # noqa: E402
from hypermindlabs.demo import demo_spec, generate_events  # noqa: E402
from hypermindlabs.rollups import facts as this  # noqa: E402

RUNS_PER_BATCH = 2_500


def load_facts(checkout: Path) -> ModuleType:
    """``hypermindlabs/rollups/facts.py`` of another checkout, as a module of its own."""
    path = checkout / "hypermindlabs" / "rollups" / "facts.py"
    spec = importlib.util.spec_from_file_location("base_rollup_facts", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def workload(size: int, events: int) -> list[list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
    """Batches of (run row, its children's rows) as the hook sees them, at ``size``'s density."""
    runs_per_day = max(1, round(size / q.DAYS / q.events_per_run()))
    spec = demo_spec(seed=q.SEED, end=q.END, days=q.DAYS)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for ev in itertools.islice(generate_events(spec, runs_per_day=runs_per_day), events):
        row = dict(stored_event(parse_event(ev)))
        row["failure_class"] = row.get("error_class")
        row.setdefault("cluster_id", None)
        by_run.setdefault(row["run_id"], []).append(row)
    runs = []
    for rows in by_run.values():
        run = next((r for r in rows if r["kind"] == "run"), None)
        if run is not None:
            runs.append((run, [r for r in rows if r["kind"] != "run"]))
    return [runs[i : i + RUNS_PER_BATCH] for i in range(0, len(runs), RUNS_PER_BATCH)]


def one_pass(mod: ModuleType, batches: list) -> tuple[float, dict]:
    """CPU seconds of the facts and cells of every batch; the cells by slice key (not timed)."""
    started = time.process_time()
    done = []
    for batch in batches:
        acc = mod.Accumulator()
        for run, children in batch:
            mod.add_run(acc, run, children)
        done.append((acc.keys, acc.nonzero()))
    took = time.process_time() - started
    cells: dict = {}
    for keys, got in done:
        cells.update({(keys[k], t, b): (list(v), dict(sk)) for (k, t, b), (v, sk) in got.items()})
    return took, cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M,10M", help="densities: the store sizes of bench/query.py")
    ap.add_argument("--events", type=int, default=100_000, help="events run through at each density")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--base", type=Path, help="another checkout to compare with (alternating rounds)")
    args = ap.parse_args()
    mods = {"this": this} | ({"base": load_facts(args.base)} if args.base else {})
    gc.disable()  # as in the ingest batch (ingest.collector_paused)
    print(f"{'density':>8} {'events':>8} " + " ".join(f"{name + ' µs/event':>15}" for name in mods)
          + ("  this/base" if args.base else ""))  # fmt: skip
    for size_text in args.sizes.split(","):
        size = q.parse_size(size_text)
        batches = workload(size, args.events)
        n = sum(1 + len(ch) for batch in batches for _, ch in batch)
        times: dict[str, list[float]] = {name: [] for name in mods}
        cells: dict[str, dict] = {}
        for r in range(args.rounds):
            for name in mods if r % 2 == 0 else reversed(list(mods)):
                took, cells[name] = one_pass(mods[name], batches)
                times[name].append(took / n * 1e6)
            gc.collect()
        if args.base and cells["this"] != cells["base"]:
            raise SystemExit(f"{size_text}: the two checkouts' cells differ")
        med = {name: statistics.median(ts) for name, ts in times.items()}
        line = f"{size_text:>8} {n:>8,} " + " ".join(f"{med[name]:>15.1f}" for name in mods)
        if args.base:
            line += f"  {med['this'] / med['base']:.3f} (cells equal)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
