"""Loading the demo workload into a store through the same ingest door as the API."""

from __future__ import annotations

import sys
from datetime import datetime

from hypermindlabs.store import AppendResult, EventStore

__all__ = ["load_demo"]


def load_demo(store: EventStore, *, seed: int, days: int, runs_per_day: int, end: datetime,
              progress: bool = True) -> AppendResult:  # fmt: skip
    """Generate the demo workload and store it through the same ingest path as the API."""
    from tqdm import tqdm

    from hypermindlabs.demo.workload import demo_spec, generate_events
    from hypermindlabs.ingest import ingest_objects

    spec = demo_spec(seed=seed, end=end, days=days)
    total = AppendResult()
    batch: list[dict] = []
    with tqdm(desc="demo events", unit=" ev", disable=not progress or None, file=sys.stderr) as bar:
        for ev in generate_events(spec, runs_per_day=runs_per_day):
            batch.append(ev)
            if len(batch) >= 5000:
                total.merge(ingest_objects(store, batch))
                bar.update(len(batch))
                batch = []
        if batch:
            total.merge(ingest_objects(store, batch))
            bar.update(len(batch))
    return total
