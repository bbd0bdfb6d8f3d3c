"""Stored run events → OpenTelemetry metrics (capped labels, run_id exemplars) and spans.

:class:`Telemetry` is an observer of the event store: ``store.commit_hooks`` calls
:meth:`Telemetry.record_rows` with every newly stored event, once, after commit. Providers are
injected (no global OTel state is touched): a ``MeterProvider`` read by a pull reader that
``/metrics`` collects from, and optionally a ``TracerProvider`` whose spans go to OTLP.

    >>> from hypermindlabs.config import Settings
from hypermindlabs.core.vocabulary import STATUSES
    >>> telemetry = Telemetry.from_settings(Settings())      # metrics only: no OTLP endpoint set
    >>> telemetry.record_rows([])                             # store.commit_hooks.append(...)

Nothing in this path raises into the caller: a malformed row, an SDK or exporter failure, an
unreachable collector are logged, counted in ``hypermind.telemetry.dropped`` by reason, and the
next row is recorded as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    SpanExporter,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from hypermindlabs import conventions as c
from hypermindlabs.config import Settings
from hypermindlabs.core.vocabulary import STATUSES
from hypermindlabs.export.cardinality import Cardinality, parse_budgets
from hypermindlabs.export.providers import (
    LossCounter,
    ReplayIds,
    make_meter_provider,
    make_tracer_provider,
    traces_url,
)
from hypermindlabs.store.label_admissions import LabelAdmissions

__all__ = ["Telemetry"]

log = logging.getLogger(__name__)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_MAX_SPAN_USER_ATTRIBUTES = 64
_MAX_STATUS_DESCRIPTION = 512


class Telemetry:
    """Turns stored events into metrics and spans. Thread-safe; :meth:`record_rows` never raises.

    ``meter_provider`` must read through ``reader`` (an in-memory pull reader) and should be made
    by :func:`make_meter_provider` (the Views give the buckets and drop the run id from series).
    ``tracer_provider`` is optional: without one no spans are made. Its id generator is wrapped so
    the spans carry the stored trace and span ids.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider,
        reader: InMemoryMetricReader,
        tracer_provider: TracerProvider | None = None,
        cardinality: Cardinality | None = None,
        losses: LossCounter | None = None,
        record_metrics: bool = True,
    ) -> None:
        # False in the product pipeline: /metrics renders the store's exported-series view
        # (export/view.py); the SDK instruments stay for agents running their own OTel pipeline.
        self.record_metrics = record_metrics
        self.meter_provider = meter_provider
        self.reader = reader
        self.tracer_provider = tracer_provider
        self.caps = cardinality or Cardinality()
        self.losses = losses or LossCounter()
        self._ids: ReplayIds | None = None
        self._tracer = None
        if tracer_provider is not None:
            current = tracer_provider.id_generator
            ids: ReplayIds = current if isinstance(current, ReplayIds) else ReplayIds(fallback=current)
            # Tracers made before keep their generator; ours (made next) replays stored ids.
            tracer_provider.id_generator = ids  # type: ignore[assignment]  # the SDK types it as its default class
            self._ids = ids
            self._tracer = tracer_provider.get_tracer(c.TRACER_NAME)

        meter = meter_provider.get_meter(c.METER_NAME)

        def histogram(spec: c.MetricSpec) -> Any:
            bounds = list(spec.buckets or ())
            return meter.create_histogram(
                spec.name,
                unit=spec.unit,
                description=spec.description,
                explicit_bucket_boundaries_advisory=bounds,
            )

        def counter(spec: c.MetricSpec) -> Any:
            return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)

        self._op_duration = histogram(c.OPERATION_DURATION)
        self._token_usage = histogram(c.TOKEN_USAGE)
        self._run_duration = histogram(c.AGENT_RUN_DURATION)
        self._run_tokens = histogram(c.AGENT_RUN_TOKENS)
        self._runs = counter(c.AGENT_RUNS)
        self._tool_calls = counter(c.TOOL_CALLS)
        self._step_errors = counter(c.STEP_ERRORS)
        self._policy_checks = counter(c.POLICY_CHECKS)
        self._failures = counter(c.FAILURES)
        for spec, callback in (
            (c.LABEL_OVERFLOW, self._observe_folds),
            (c.TELEMETRY_DROPPED, self._observe_losses),
        ):
            meter.create_observable_counter(
                spec.name, callbacks=[callback], unit=spec.unit, description=spec.description
            )

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        admissions: LabelAdmissions | None = None,
        span_exporter: SpanExporter | None = None,
        clock: Callable[[], int] = time.time_ns,
        record_metrics: bool = True,
    ) -> Telemetry:
        """The production wiring: caps from settings (admitted values shared through ``admissions``), spans
        to OTLP/HTTP only when ``settings.otlp_endpoint`` is set (or ``span_exporter`` is given).

        Raises ConfigError at start-up for invalid budgets or endpoint.
        """
        budgets = parse_budgets(settings.label_budgets)
        losses = LossCounter()
        reader = InMemoryMetricReader()
        meter_provider = make_meter_provider(reader)
        exporter = span_exporter
        production = False
        if exporter is None and settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(
                endpoint=traces_url(settings.otlp_endpoint), timeout=settings.otlp_timeout_ms / 1000
            )
            production = True
        tracer_provider = None
        if exporter is not None:
            tracer_provider = make_tracer_provider(
                exporter, losses, meter_provider=meter_provider, shutdown_on_exit=production,
                export_timeout_millis=settings.otlp_timeout_ms,
            )  # fmt: skip
        return cls(
            meter_provider=meter_provider,
            reader=reader,
            tracer_provider=tracer_provider,
            cardinality=Cardinality(budgets, admissions=admissions, clock=clock),
            losses=losses,
            record_metrics=record_metrics,
        )

    def attach(self, store: Any) -> Telemetry:
        """Observe ``store``: every newly stored event is recorded once, after commit."""
        if self.record_rows not in store.commit_hooks:  # attaching twice must not double count
            store.commit_hooks.append(self.record_rows)
        return self

    # -- reading -----------------------------------------------------------------------------
    def collect(self) -> MetricsData | None:
        """Current cumulative metrics (what ``/metrics`` exposes)."""
        return self.reader.get_metrics_data()

    def force_flush(self, timeout_millis: int = 30_000) -> None:
        if self.tracer_provider is not None:
            try:
                self.tracer_provider.force_flush(timeout_millis)
            except Exception:  # noqa: BLE001
                log.exception("telemetry: span flush failed")

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is None:
                continue
            try:
                provider.shutdown()
            except Exception:  # noqa: BLE001
                log.exception("telemetry: provider shutdown failed")

    def _observe_folds(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {c.ATTR_LABEL: label}) for label, n in sorted(self.caps.folds().items())]

    def _observe_losses(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {c.ATTR_REASON: reason}) for reason, n in sorted(self.losses.snapshot().items())
        ]

    # -- recording ---------------------------------------------------------------------------
    def record_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Record newly stored events (rows with the columns of ``schema.events``). Never raises."""
        try:
            for row in rows:
                self._record_row(row)
        except Exception:  # noqa: BLE001 - e.g. ``rows`` not iterable; the caller must not see it
            log.exception("telemetry: could not iterate the stored rows")
            self.losses.add(c.DROP_MALFORMED_EVENT)

    def _record_row(self, row: Mapping[str, Any]) -> None:
        try:
            ev = _Event(row)
        except Exception as exc:  # noqa: BLE001 - malformed row: skip it whole, count it
            log.warning("telemetry: malformed event row skipped (event_id=%r): %s", _safe_id(row), exc)
            self.losses.add(c.DROP_MALFORMED_EVENT)
            return
        span = None
        if self._tracer is not None:
            try:
                span = self._span(ev)
            except Exception:  # noqa: BLE001
                log.warning("telemetry: span for event %r not made", ev.event_id, exc_info=True)
                self.losses.add(c.DROP_SPAN_ERROR)
        if not self.record_metrics:
            return
        try:
            self._metrics(ev, span)
        except Exception:  # noqa: BLE001
            log.warning("telemetry: metrics for event %r not recorded", ev.event_id, exc_info=True)
            self.losses.add(c.DROP_RECORD_ERROR)

    def _metrics(self, ev: _Event, span: Any) -> None:
        # Each capped label is resolved once per event, so a fold is counted once per event.
        cap = self.caps.cap
        kind = ev.kind
        status = ev.status
        failed = status == "error"
        project = cap(c.BUDGET_PROJECT, ev.project)
        model = provider = tool = scenario = error_type = error_class = None
        if kind in ("llm", "run"):
            model = cap(c.BUDGET_MODEL, ev.model)
            provider = cap(c.BUDGET_PROVIDER, ev.provider()) or c.OTHER_SEMCONV
        if kind in ("tool", "retrieval"):
            tool = cap(c.BUDGET_TOOL, ev.tool)
        if kind in ("run", "policy"):
            scenario = cap(c.BUDGET_SCENARIO, ev.scenario)
        if failed and kind != "policy":
            error_type = cap(c.BUDGET_ERROR_TYPE, ev.error_type) or c.OTHER_SEMCONV
        if (failed and kind != "run") or ev.cluster_id is not None:
            error_class = (
                cap(c.BUDGET_ERROR_CLASS, ev.failure_class or ev.error_class) or c.UNKNOWN_ERROR_CLASS
            )
        # The exemplar context: the event's own span, so exemplars carry its trace and span ids.
        if span is None:
            span = NonRecordingSpan(SpanContext(ev.trace_id, ev.span_id, False, _SAMPLED))
        ctx = set_span_in_context(span, Context())
        run_id = ev.run_id

        op = c.OPERATION_BY_KIND[kind]
        if kind != "policy":
            attrs = _present({
                c.ATTR_OPERATION: op, c.ATTR_PROVIDER: provider, c.ATTR_REQUEST_MODEL: model,
                c.ATTR_TOOL_NAME: tool, c.ATTR_ERROR_TYPE: error_type, c.ATTR_PROJECT: project,
                c.ATTR_RUN_ID: run_id,
            })  # fmt: skip
            self._op_duration.record(ev.duration_s, attrs, ctx)
        if kind == "llm" and not ev.tokens_estimated:
            base = _present({c.ATTR_OPERATION: op, c.ATTR_PROVIDER: provider, c.ATTR_REQUEST_MODEL: model,
                             c.ATTR_PROJECT: project, c.ATTR_RUN_ID: run_id})  # fmt: skip
            for token_type, n in ((c.TOKEN_INPUT, ev.input_tokens), (c.TOKEN_OUTPUT, ev.output_tokens)):
                if n is not None:
                    self._token_usage.record(n, {**base, c.ATTR_TOKEN_TYPE: token_type}, ctx)

        if kind == "run":
            dims = _present({c.ATTR_PROJECT: project, c.ATTR_SCENARIO: scenario, c.ATTR_MODEL: model})
            self._runs.add(1, {**dims, c.ATTR_STATUS: status})
            self._run_duration.record(
                ev.duration_s, {**dims, c.ATTR_STATUS: status, c.ATTR_RUN_ID: run_id}, ctx
            )
            estimated = "true" if ev.tokens_estimated else "false"
            for token_type, n in ((c.TOKEN_INPUT, ev.input_tokens), (c.TOKEN_OUTPUT, ev.output_tokens)):
                if n is not None:
                    t_attrs = {
                        **dims,
                        c.ATTR_TOKEN_TYPE: token_type,
                        c.ATTR_ESTIMATED: estimated,
                        c.ATTR_RUN_ID: run_id,
                    }
                    self._run_tokens.record(n, t_attrs, ctx)
        elif kind == "tool":
            self._tool_calls.add(1, _present({c.ATTR_TOOL: tool, c.ATTR_STATUS: status}))
        elif kind == "policy":
            self._policy_checks.add(
                1, _present({c.ATTR_PROJECT: project, c.ATTR_SCENARIO: scenario, c.ATTR_STATUS: status})
            )

        if failed and kind != "run":
            self._step_errors.add(1, {c.ATTR_KIND: kind, c.ATTR_ERROR_CLASS: error_class})
        if kind == "run" and failed and ev.cluster_id is not None:
            # Once per failed run, under its root cause (the store attributed it); failed steps
            # are counted by the step-errors metric.
            self._failures.add(
                1, {c.ATTR_FAILURE_CLASS: error_class, c.ATTR_CLUSTER: cap(c.BUDGET_CLUSTER, ev.cluster_id)}
            )

    def _span(self, ev: _Event) -> Any:
        tracer = self._tracer
        ids = self._ids
        assert tracer is not None and ids is not None  # noqa: S101 - called only with a tracer
        kind = ev.kind
        op = c.OPERATION_BY_KIND[kind]
        attrs: dict[str, Any] = {}
        for key, value in ev.user_attributes().items():
            if len(attrs) >= _MAX_SPAN_USER_ATTRIBUTES:
                break
            attrs[key] = value
        if kind == "run":
            for key, value in ev.tags.items():
                attrs[c.SPAN_ATTR_TAG_PREFIX + str(key)] = str(value)
        attrs.update(_present({
            c.ATTR_OPERATION: op,
            c.SPAN_ATTR_RUN_ID: ev.run_id,
            c.SPAN_ATTR_EVENT_ID: ev.event_id,
            c.SPAN_ATTR_PROJECT: ev.project,
            c.SPAN_ATTR_SCENARIO: ev.scenario,
            c.SPAN_ATTR_FAILURE_CLASS: ev.failure_class,
            c.SPAN_ATTR_CLUSTER: ev.cluster_id,
            c.ATTR_ERROR_TYPE: (ev.error_type or c.OTHER_SEMCONV) if ev.status == "error" else None,
        }))  # fmt: skip
        if kind == "run":
            name = f"{op} {ev.name}" if ev.name else op
            attrs.update(_present({c.ATTR_AGENT_NAME: ev.name, c.ATTR_REQUEST_MODEL: ev.model,
                                   c.ATTR_PROVIDER: ev.provider()}))  # fmt: skip
        elif kind == "llm":
            name = f"{op} {ev.model}" if ev.model else op
            attrs.update(
                _present({c.ATTR_REQUEST_MODEL: ev.model, c.ATTR_PROVIDER: ev.provider() or c.OTHER_SEMCONV})
            )
        elif kind == "policy":
            name = f"{op} {ev.name}" if ev.name else op
            attrs.update(_present({c.SPAN_ATTR_POLICY_NAME: ev.name, c.ATTR_TOOL_NAME: ev.tool}))
        else:
            name = f"{op} {ev.tool}" if ev.tool else (ev.name or op)
            attrs.update(_present({c.ATTR_TOOL_NAME: ev.tool}))
        if ev.input_tokens is not None:
            attrs[c.ATTR_USAGE_INPUT_TOKENS] = ev.input_tokens
        if ev.output_tokens is not None:
            attrs[c.ATTR_USAGE_OUTPUT_TOKENS] = ev.output_tokens
        if ev.tokens_estimated:
            attrs[c.SPAN_ATTR_TOKENS_ESTIMATED] = True

        if ev.parent_span_id is not None:
            parent = NonRecordingSpan(SpanContext(ev.trace_id, ev.parent_span_id, True, _SAMPLED))
            parent_ctx = set_span_in_context(parent, Context())
        else:
            parent_ctx = Context()  # explicit root: never a child of whatever span is current here
        span_kind = SpanKind.CLIENT if kind == "llm" else SpanKind.INTERNAL
        ids.preset(ev.trace_id, ev.span_id)
        try:
            span = tracer.start_span(name, context=parent_ctx, kind=span_kind, attributes=attrs,
                                     start_time=ev.start_ns, record_exception=False)  # fmt: skip
        finally:
            ids.clear()
        if ev.status == "error":
            span.set_status(
                Status(StatusCode.ERROR, (ev.error_message or ev.error_type or "")[:_MAX_STATUS_DESCRIPTION])
            )
        span.end(end_time=ev.end_ns)
        return span


class _Event:
    """One stored row, checked and typed once; raises on anything malformed."""

    __slots__ = ("event_id", "run_id", "kind", "status", "trace_id", "span_id", "parent_span_id",
                 "start_ns", "end_ns", "duration_s", "name", "project", "scenario", "model", "tool",
                 "input_tokens", "output_tokens", "tokens_estimated", "error_type", "error_message",
                 "error_class", "failure_class", "cluster_id", "attributes", "tags")  # fmt: skip

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.event_id = _str(row.get("event_id"))
        self.run_id = _required_str(row, "run_id")
        self.kind = row["kind"]
        if self.kind not in c.OPERATION_BY_KIND:
            raise ValueError(f"kind: {self.kind!r}")
        self.status = row["status"]
        if self.status not in STATUSES:
            raise ValueError(f"status: {self.status!r}")
        self.trace_id = _hex_int(row["trace_id"], 32)
        self.span_id = _hex_int(row["span_id"], 16)
        parent = row.get("parent_span_id")
        self.parent_span_id = _hex_int(parent, 16) if parent else None
        start, end = row["start_ns"], row["end_ns"]
        if type(start) is not int or type(end) is not int or end < start:
            raise ValueError("start_ns/end_ns: expected integers with end ≥ start")
        self.start_ns, self.end_ns = start, end
        self.duration_s = (end - start) / 1e9
        self.name = _str(row.get("name"))
        self.project = _str(row.get("project"))
        self.scenario = _str(row.get("scenario"))
        self.model = _str(row.get("model"))
        self.tool = _str(row.get("tool"))
        self.input_tokens = _count(row.get("input_tokens"))
        self.output_tokens = _count(row.get("output_tokens"))
        self.tokens_estimated = bool(row.get("tokens_estimated"))
        self.error_type = _str(row.get("error_type"))
        self.error_message = _str(row.get("error_message"))
        self.error_class = _str(row.get("error_class"))
        self.failure_class = _str(row.get("failure_class"))
        self.cluster_id = _str(row.get("cluster_id"))
        self.attributes = _json_object(row.get("attributes"), "attributes")
        self.tags = _json_object(row.get("tags"), "tags")

    def provider(self) -> str | None:
        attrs = self.attributes
        if attrs:
            for key in c.PROVIDER_ATTRIBUTE_KEYS:
                value = attrs.get(key)
                if isinstance(value, str) and value:
                    return value
        model = self.model
        if model:
            lowered = model.lower().rsplit("/", 1)[-1]
            for prefix, provider in c.PROVIDER_BY_MODEL_PREFIX:
                if lowered.startswith(prefix):
                    return provider
        return None

    def user_attributes(self) -> dict[str, Any]:
        """The event's free attributes that are valid span attributes (primitives, flat)."""
        return {k: v for k, v in self.attributes.items() if isinstance(v, str | bool | int | float)}


def _json_object(raw: Any, column: str) -> dict[str, Any]:
    if raw is None or raw == "{}" or raw == "":
        return {}
    value = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(value, dict):
        raise ValueError(f"{column}: expected a JSON object")
    return value


def _present(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _required_str(row: Mapping[str, Any], key: str) -> str:
    value = _str(row.get(key))
    if value is None:
        raise ValueError(f"{key}: required")
    return value


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise ValueError(f"token count: expected a whole number ≥ 0, got {value!r}")
    return value


def _hex_int(value: Any, size: int) -> int:
    if not isinstance(value, str) or len(value) != size:
        raise ValueError(f"expected {size} hex characters, got {value!r}"[:120])
    n = int(value, 16)
    if n == 0:
        raise ValueError("all-zero id")
    return n


def _safe_id(row: Any) -> Any:
    try:
        return row.get("event_id")
    except Exception:  # noqa: BLE001
        return None
