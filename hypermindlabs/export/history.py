"""The store's history as OpenMetrics, for ``promtool tsdb create-blocks-from openmetrics``.

A new Prometheus shows only what it scraped since it started; this writes what it would have
scraped: the exported series as they stood at every ``step`` between ``from`` and ``to``, each run
counted at its end time (counters from zero at the first run stored). Label values go through the
same caps as the live view (in a transaction rolled back at the end: exporting admits nothing).

    hypermind-obs export-openmetrics --from 2026-01-01T00:00:00Z --to 2026-01-15T00:00:00Z --step 60s > h.om
    promtool tsdb create-blocks-from openmetrics h.om ./data
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, Any

from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.engine import Engine

from hypermindlabs import conventions as c
from hypermindlabs.export.admission import WindowCaps
from hypermindlabs.export.facts import Deltas, add_run
from hypermindlabs.export.render import families_from_rows
from hypermindlabs.store import export_series as sql

__all__ = ["write_history"]


def _deltas_by_step(engine: Engine, caps: WindowCaps, from_ns: int, to_ns: int, step_ns: int) -> dict[int, Deltas]:
    """Per step index (0 = at ``from``): the deltas of the runs that ended in it; earlier runs in 0."""
    steps: dict[int, Deltas] = {}
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            for page in sql.run_pages(conn):
                for evs in page.values():
                    run = next((x for x in evs if x["kind"] == "run"), None)
                    if run is None or run["end_ns"] > to_ns:
                        continue
                    k = max(0, -(-(run["end_ns"] - from_ns) // step_ns))
                    acc = steps.setdefault(k, Deltas())
                    cap = caps.bind(conn, _fold_counter(acc))
                    add_run(acc, run, [x for x in evs if x["kind"] != "run"], cap)
        finally:
            tx.rollback()
    return steps


def _fold_counter(acc: Deltas) -> Callable[[str, int], None]:
    def on_fold(label: str, sign: int) -> None:
        acc.inc(c.LABEL_OVERFLOW, {c.ATTR_LABEL: label}, sign)

    return on_fold


class _History(Collector):
    def __init__(self, steps: dict[int, Deltas], from_ns: int, n_steps: int, step_ns: int) -> None:
        self._steps, self._from, self._n, self._step = steps, from_ns, n_steps, step_ns

    def collect(self) -> Iterator[Any]:
        # Every series is written from the first step on (at 0 before its first run), so increase()
        # over any window sees its first runs too.
        totals: dict[tuple[Any, ...], list[Any]] = {}
        for acc in self._steps.values():
            for row in acc.rows():
                totals.setdefault((row[0], row[1]), [*row[:4], 0, None, None, None, None])
        merged: dict[str, Any] = {}
        for k in range(self._n + 1):
            step = self._steps.get(k)
            if step is not None:
                for row in step.rows():
                    totals[(row[0], row[1])][4] += row[4]
            if not totals:
                continue
            ts = (self._from + k * self._step) / 1e9
            for fam in families_from_rows(list(totals.values()), timestamp=ts):
                if not fam.samples:
                    continue
                into = merged.setdefault(fam.name, fam)
                if into is not fam:
                    into.samples.extend(fam.samples)
        for fam in merged.values():
            # OpenMetrics: one family's points per series in time order.
            fam.samples.sort(key=lambda s: (s.name, sorted(s.labels.items()), s.timestamp))
            yield fam


def write_history(engine: Engine, caps: WindowCaps, out: IO[bytes], *, from_ns: int, to_ns: int,
                  step_ns: int = 60 * 10**9) -> int:  # fmt: skip
    """Write the OpenMetrics history of ``[from_ns, to_ns]`` at ``step_ns``; the number of steps."""
    if step_ns <= 0 or to_ns < from_ns:
        raise ValueError("step must be > 0 and to ≥ from")
    n_steps = (to_ns - from_ns) // step_ns
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_History(_deltas_by_step(engine, caps, from_ns, to_ns, step_ns), from_ns, n_steps, step_ns))
    out.write(generate_latest(registry))
    return n_steps + 1
