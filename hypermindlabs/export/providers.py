"""The OpenTelemetry SDK pieces telemetry runs on: providers, Views, exemplar filter, guarded export.

Built explicitly (no global OTel state, no environment read): a ``MeterProvider`` read by a pull
reader for ``/metrics``, and optionally a ``TracerProvider`` whose span export never raises and
counts what it loses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import ExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from hypermindlabs import conventions as c
from hypermindlabs.config import ConfigError

__all__ = ["LossCounter", "GuardedSpanExporter", "RunExemplarFilter", "metric_views", "make_meter_provider",
           "make_tracer_provider", "ReplayIds", "traces_url"]  # fmt: skip

log = logging.getLogger(__name__)


class LossCounter:
    """Telemetry lost, by reason (conventions.DROP_*): exported as hypermind.telemetry.dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(c.DROP_REASONS, 0)

    def add(self, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class GuardedSpanExporter(SpanExporter):
    """Wraps the real exporter: a failed or raising export is counted as lost spans, never raised."""

    def __init__(self, exporter: SpanExporter, losses: LossCounter) -> None:
        self._exporter = exporter
        self._losses = losses

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._exporter.export(spans)
        except Exception:  # noqa: BLE001 - an exporter bug must not kill the export thread
            log.exception("telemetry: span exporter raised; %d spans lost", len(spans))
            self._losses.add(c.DROP_SPAN_EXPORTER_ERROR, len(spans))
            return SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            log.warning("telemetry: span export failed; %d spans lost", len(spans))
            self._losses.add(c.DROP_SPAN_EXPORT_FAILED, len(spans))
        return result

    def shutdown(self) -> None:
        try:
            self._exporter.shutdown()
        except Exception:  # noqa: BLE001
            log.exception("telemetry: span exporter failed to shut down")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        try:
            return self._exporter.force_flush(timeout_millis)
        except Exception:  # noqa: BLE001
            log.exception("telemetry: span exporter failed to flush")
            return False


class _CountingBatchSpanProcessor(BatchSpanProcessor):
    """BatchSpanProcessor that counts the spans it drops when its queue is full.

    The SDK drops the oldest queued span on overflow and only logs it (its own counter needs an
    environment switch); the queue length is read best-effort from the processor's internals.
    """

    def __init__(self, exporter: SpanExporter, losses: LossCounter, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._losses = losses
        self._max_queue = kwargs.get("max_queue_size") or 2048

    def on_end(self, span: ReadableSpan) -> None:
        queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
        if queue is not None and len(queue) >= self._max_queue:
            self._losses.add(c.DROP_SPAN_QUEUE_FULL)
        super().on_end(span)


class ReplayIds(IdGenerator):
    """Hands the SDK the trace/span ids of the stored event about to become a span (per thread).

    Outside :meth:`Telemetry.record_rows` (no preset) it behaves like ``fallback``.
    """

    def __init__(self, fallback: IdGenerator | None = None) -> None:
        self._local = threading.local()
        self._fallback = fallback or RandomIdGenerator()

    def preset(self, trace_id: int, span_id: int) -> None:
        self._local.ids = (trace_id, span_id)

    def clear(self) -> None:
        self._local.ids = None

    def generate_span_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[1] if ids else self._fallback.generate_span_id()

    def generate_trace_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[0] if ids else self._fallback.generate_trace_id()


def metric_views() -> list[View]:
    """One View per exported instrument: explicit buckets, the kept labels, the SDK backstop.

    Attributes not in a metric's labels (the run id) are removed from the series and kept by the
    SDK in exemplars' ``filtered_attributes``.
    """
    views = []
    for spec in c.METRICS:
        aggregation = ExplicitBucketHistogramAggregation(list(spec.buckets)) if spec.buckets else None
        kwargs: dict[str, Any] = {"aggregation": aggregation} if aggregation is not None else {}
        views.append(
            View(
                instrument_name=spec.name,
                meter_name=c.METER_NAME,
                attribute_keys=set(spec.labels),
                aggregation_cardinality_limit=c.SDK_CARDINALITY_LIMIT,
                **kwargs,
            )
        )
    return views


def _resource() -> Resource:
    # Built explicitly (not Resource.create) so no environment variable changes what is exported.
    return Resource({"service.name": c.SERVICE_NAME})


class RunExemplarFilter(ExemplarFilter):
    """Samples every measurement that carries a run id (all histogram measurements), nothing else.

    Like ``AlwaysOnExemplarFilter`` for the histograms: the ingest path has no active span (events
    arrive after the fact), so the default trace-based filter would never sample. Counters carry
    no run id and skip the reservoir work entirely.
    """

    def should_sample(self, value: float, time_unix_nano: int, attributes: Any, context: Any) -> bool:
        return attributes is not None and c.ATTR_RUN_ID in attributes


def make_meter_provider(reader: InMemoryMetricReader) -> MeterProvider:
    """A MeterProvider with this product's Views and exemplars for every run measurement.

    Each histogram measurement carries the event's span context (so exemplars get its trace and
    span ids) and its run id (removed from the series by the View, kept in the exemplar).
    """
    return MeterProvider(
        metric_readers=[reader],
        resource=_resource(),
        views=metric_views(),
        exemplar_filter=RunExemplarFilter(),
        shutdown_on_exit=False,
    )


def make_tracer_provider(
    exporter: SpanExporter,
    losses: LossCounter,
    *,
    batch: bool = True,
    meter_provider: MeterProvider | None = None,
    shutdown_on_exit: bool = False,
    export_timeout_millis: int = 30_000,
) -> TracerProvider:
    """A TracerProvider exporting through ``exporter`` (guarded; losses counted)."""
    provider = TracerProvider(
        sampler=ParentBased(ALWAYS_ON),
        resource=_resource(),
        shutdown_on_exit=shutdown_on_exit,
        id_generator=ReplayIds(),
    )
    guarded = GuardedSpanExporter(exporter, losses)
    if batch:
        processor: Any = _CountingBatchSpanProcessor(
            guarded, losses, meter_provider=meter_provider, export_timeout_millis=export_timeout_millis
        )
    else:
        processor = SimpleSpanProcessor(guarded)
    provider.add_span_processor(processor)
    return provider


def traces_url(endpoint: str) -> str:
    # OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: the signal path is appended (OTLP spec).
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"OTEL_EXPORTER_OTLP_ENDPOINT: expected an http(s):// URL, got {endpoint!r}")
    if endpoint.rstrip("/").endswith("/v1/traces"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"
