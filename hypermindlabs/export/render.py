"""``/metrics`` from the exported-series view: OpenMetrics with run_id/trace_id exemplars, or classic text.

:class:`ViewCollector` is a prometheus_client ``Collector`` reading the ``export_series`` rows at
each scrape, so every process and worker renders the same numbers; exposition is
prometheus_client's own (``generate_latest`` / ``openmetrics.generate_latest``) on one registry
per app. In-process loss counts (spans not exported) are added from the serving process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar, Timestamp
from prometheus_client.utils import floatToGoString
from sqlalchemy.engine import Engine

from hypermindlabs import conventions as c
from hypermindlabs.export.exposition import exemplar_labels
from hypermindlabs.export.facts import scale_of
from hypermindlabs.store import export_series as sql

__all__ = ["ViewCollector", "view_registry", "families_from_rows"]


def view_registry(engine: Engine, losses: Callable[[], Mapping[str, int]] | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ViewCollector(engine, losses))
    return registry


def _family(spec: c.MetricSpec) -> Metric:
    return Metric(spec.prom_family, spec.description, spec.kind, spec.prom_unit)


def families_from_rows(rows: list[Any], *, timestamp: float | None = None,
                       losses: Mapping[str, int] | None = None) -> list[Metric]:  # fmt: skip
    """The metric families of view rows (``SERIES_COLUMNS`` order), every conventions metric present.

    ``timestamp`` (seconds) stamps every sample: the history export writes one such snapshot per step.
    """
    families = {spec.name: _family(spec) for spec in c.METRICS}
    series: dict[tuple[str, str], dict[int, Any]] = {}
    for row in rows:
        series.setdefault((row[2], row[3]), {})[row[1]] = row
    for (metric, labels_json), slots in sorted(series.items()):
        spec = c.METRICS_BY_NAME.get(metric)
        if spec is None:
            continue
        family = families[metric]
        labels = orjson.loads(labels_json)
        if spec.kind == "counter":
            family.add_sample(family.name + "_total", labels, float(slots[0][4]) if 0 in slots else 0.0, timestamp)
            continue
        bounds = spec.buckets or ()
        scale = scale_of(spec)
        cumulative = 0
        for i in range(len(bounds) + 1):
            row = slots.get(i)
            cumulative += int(row[4]) if row is not None else 0
            le = floatToGoString(bounds[i]) if i < len(bounds) else "+Inf"
            ex = None
            if row is not None and row[5] is not None and timestamp is None:
                sec, nsec = divmod(int(row[5]), 1_000_000_000)
                ex = Exemplar(exemplar_labels(row[6], row[7]), row[8] / scale, Timestamp(sec, nsec))
            family.add_sample(f"{family.name}_bucket", {**labels, "le": le}, float(cumulative), timestamp, ex)
        family.add_sample(f"{family.name}_count", labels, float(cumulative), timestamp)
        total = slots.get(-1)
        family.add_sample(f"{family.name}_sum", labels, (int(total[4]) if total else 0) / scale, timestamp)
    if losses is not None:
        fam = families[c.TELEMETRY_DROPPED.name]
        for reason, n in sorted(losses.items()):
            fam.add_sample(fam.name + "_total", {c.prom_label(c.ATTR_REASON): reason}, float(n), timestamp)
    return [families[spec.name] for spec in c.METRICS]


class ViewCollector:
    """A prometheus_client collector over the store's exported-series view."""

    def __init__(self, engine: Engine, losses: Callable[[], Mapping[str, int]] | None = None) -> None:
        self._engine = engine
        self._losses = losses

    def describe(self) -> list[Metric]:
        return [_family(spec) for spec in c.METRICS]

    def collect(self) -> Iterator[Metric]:
        with self._engine.connect() as conn:
            rows = sql.read_series(conn)
        yield from families_from_rows(rows, losses=self._losses() if self._losses else None)
