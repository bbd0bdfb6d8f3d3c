"""OTel metrics → Prometheus exposition: OpenMetrics (with run_id/trace_id exemplars) or classic text.

The stock OTel Prometheus exporter drops exemplars, so this module bridges the two libraries:
:class:`OtelCollector` is a prometheus_client ``Collector`` that reads the OTel reader's data
(histogram points with their exemplars' ``filtered_attributes`` and span context) and yields
prometheus_client metric families with ``Exemplar`` objects. Exposition is prometheus_client's
own pure functions on one registry per app (never the global ``REGISTRY``):

    registry = build_registry(telemetry)
    generate_latest(registry)                 # text 0.0.4, exemplars omitted
    openmetrics.generate_latest(registry)     # OpenMetrics 1.0 with exemplars

The format follows the scraper's ``Accept`` header (Prometheus asks for OpenMetrics first).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from opentelemetry.sdk.metrics.export import Histogram, MetricsData, Sum
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar, Timestamp
from prometheus_client.utils import floatToGoString

from hypermindlabs import conventions as c

__all__ = ["build_registry", "OtelCollector", "MetricsSource", "exemplar_labels"]

_FIXED_EXEMPLAR_CHARS = len(c.EXEMPLAR_RUN_ID) + len(c.EXEMPLAR_TRACE_ID)


class MetricsSource(Protocol):
    """What the collector reads: a :class:`Telemetry`, or any holder of an OTel pull reader."""

    def collect(self) -> MetricsData | None: ...


def build_registry(telemetry: MetricsSource) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(OtelCollector(telemetry))
    return registry


def exemplar_labels(run_id: str | None, trace_id: str | None) -> dict[str, str]:
    """Exemplar labels within OpenMetrics' 128-character limit (names plus values).

    The trace id is kept whole; the run id is cut to what is left (82 characters next to a
    32-hex trace id). Run ids are at most 128 characters by contract, so only long ones are cut.

    >>> exemplar_labels("run_1", "ab" * 16) == {"run_id": "run_1", "trace_id": "ab" * 16}
    True
    >>> len(exemplar_labels("r" * 128, "ab" * 16)["run_id"])
    82
    """
    labels: dict[str, str] = {}
    room = c.EXEMPLAR_MAX_CHARS - _FIXED_EXEMPLAR_CHARS
    if trace_id:
        labels[c.EXEMPLAR_TRACE_ID] = trace_id
        room -= len(trace_id)
    if run_id:
        labels[c.EXEMPLAR_RUN_ID] = run_id[: max(room, 0)]
    return labels


class OtelCollector:
    """A prometheus_client collector over an OTel in-memory reader, exemplars included.

    The SDK's reservoirs hand out each exemplar once (they reset at every collection); the
    last exemplar per bucket is kept here, so every scrape — and every Prometheus replica —
    sees one. Their number is bounded by series × buckets.
    """

    def __init__(self, source: MetricsSource) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._exemplars: dict[tuple[str, tuple[tuple[str, str], ...], int], Exemplar] = {}

    def describe(self) -> list[Metric]:
        return [Metric(spec.prom_family, spec.description, spec.kind, spec.prom_unit) for spec in c.METRICS]

    def collect(self) -> Iterator[Metric]:
        data = self._source.collect()
        if data is None:
            return
        families: dict[str, Metric] = {}
        points: dict[str, list[tuple[dict[str, str], Any]]] = {}
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    family = self._family(metric)
                    if family is None:
                        continue
                    families.setdefault(family.name, family)
                    bucket = points.setdefault(family.name, [])
                    for point in metric.data.data_points:
                        bucket.append((_labels(point.attributes), point))
        for name in sorted(families):
            family = families[name]
            rows = sorted(points[name], key=lambda lp: sorted(lp[0].items()))
            if family.type == "histogram":
                for labels, point in rows:
                    self._add_histogram(family, labels, point)
            else:
                suffix = "_total" if family.type == "counter" else ""
                for labels, point in rows:
                    family.add_sample(family.name + suffix, labels, point.value)
            yield family

    def _family(self, metric: Any) -> Metric | None:
        spec = c.METRICS_BY_NAME.get(metric.name)
        data = metric.data
        if spec is not None:
            return Metric(spec.prom_family, spec.description, spec.kind, spec.prom_unit)
        # Anything else on the provider (e.g. SDK self-metrics): the usual OTel → Prometheus naming.
        name = c.prom_label(metric.name)
        if isinstance(data, Histogram):
            return Metric(name, metric.description or metric.name, "histogram")
        if isinstance(data, Sum) and data.is_monotonic:
            return Metric(name.removesuffix("_total"), metric.description or metric.name, "counter")
        if hasattr(data, "data_points"):
            return Metric(name, metric.description or metric.name, "gauge")
        return None

    def _add_histogram(self, family: Metric, labels: dict[str, str], point: Any) -> None:
        bounds = list(point.explicit_bounds)
        key_labels = tuple(sorted(labels.items()))
        with self._lock:
            for ex in point.exemplars or ():
                idx = bisect.bisect_left(bounds, ex.value)
                self._exemplars[(family.name, key_labels, idx)] = _exemplar(ex)
            kept = {i: self._exemplars.get((family.name, key_labels, i)) for i in range(len(bounds) + 1)}
        cumulative = 0
        for i, count in enumerate(point.bucket_counts):
            cumulative += count
            le = floatToGoString(bounds[i]) if i < len(bounds) else "+Inf"
            family.add_sample(f"{family.name}_bucket", {**labels, "le": le}, cumulative, None, kept.get(i))
        family.add_sample(f"{family.name}_count", labels, point.count)
        family.add_sample(f"{family.name}_sum", labels, point.sum)


def _labels(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (attributes or {}).items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[c.prom_label(key)] = str(value)
    return out


def _exemplar(ex: Any) -> Exemplar:
    attrs = ex.filtered_attributes or {}
    run_id = attrs.get(c.ATTR_RUN_ID)
    trace_id = f"{ex.trace_id:032x}" if ex.trace_id else None
    sec, nsec = divmod(int(ex.time_unix_nano), 1_000_000_000)
    labels = exemplar_labels(str(run_id) if run_id is not None else None, trace_id)
    return Exemplar(labels, float(ex.value), Timestamp(sec, nsec))
