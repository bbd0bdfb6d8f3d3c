"""Telemetry: stored events → OTel spans and metrics, exemplars, and a path that never raises."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from hypermindlabs import conventions as c
from hypermindlabs.config import ConfigError, Settings
from hypermindlabs.export.providers import make_meter_provider, make_tracer_provider
from hypermindlabs.export.telemetry import Telemetry
from hypermindlabs.sdk.run_manager import RunManager
from tests.conftest import FIXED_NOW_NS

T0 = FIXED_NOW_NS - 3600 * 10**9
RUN_TRACE = "0af7651916cd43dd8448eb211c80319c"
RUN_SPAN = "b7ad6b7169203331"


def stored_row(**over: Any) -> dict[str, Any]:
    """A row as the store hands it to commit hooks (the columns of schema.events)."""
    row: dict[str, Any] = {
        "event_id": "ev_1", "run_id": "run_1", "trace_id": RUN_TRACE, "span_id": RUN_SPAN,
        "parent_span_id": None, "kind": "run", "name": "answer", "start_ns": T0, "end_ns": T0 + 1_500_000_000,
        "status": "ok", "project": "support", "model": "gpt-4o", "tool": None, "scenario": "refund",
        "input_tokens": None, "output_tokens": None, "input_chars": None, "output_chars": None,
        "tokens_estimated": False, "error_type": None, "error_message": None, "error_class": None,
        "failure_class": None, "cluster_id": None, "tags": "{}", "attributes": "{}",
    }  # fmt: skip
    row.update(over)
    return row


def a_run() -> list[dict[str, Any]]:
    """One run with a chat, a failing tool call under it, a retrieval and a policy check."""
    return [
        stored_row(event_id="e_llm", kind="llm", name="chat gpt-4o", span_id="1000000000000001",
                   parent_span_id=RUN_SPAN, start_ns=T0 + 10**8, end_ns=T0 + 6 * 10**8,
                   input_tokens=800, output_tokens=90,
                   attributes='{"gen_ai.provider.name":"openai","temp":0.2}'),
        stored_row(event_id="e_tool", kind="tool", name="execute_tool crm", tool="crm",
                   span_id="1000000000000002", parent_span_id="1000000000000001",
                   start_ns=T0 + 2 * 10**8, end_ns=T0 + 3 * 10**8, status="error", error_type="ReadTimeout",
                   error_message="Read timed out. (read timeout=30)",
                   failure_class="tool_timeout", cluster_id="c0ffee0000000001"),
        stored_row(event_id="e_ret", kind="retrieval", name="retrieval", tool="kb",
                   span_id="1000000000000003", parent_span_id=RUN_SPAN,
                   start_ns=T0 + 7 * 10**8, end_ns=T0 + 8 * 10**8),
        stored_row(event_id="e_pol", kind="policy", name="pii-filter", span_id="1000000000000004",
                   parent_span_id=RUN_SPAN, start_ns=T0 + 9 * 10**8, end_ns=T0 + 10**9),
        stored_row(event_id="e_run", input_tokens=800, output_tokens=90, tags='{"env":"prod"}'),
    ]  # fmt: skip


def traced() -> tuple[Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tel = Telemetry(meter_provider=make_meter_provider(reader), reader=reader, tracer_provider=provider)
    return tel, exporter


def points(tel: Telemetry) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    data = tel.collect()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def value(tel: Telemetry, spec: c.MetricSpec, **labels: str) -> float:
    total = 0.0
    for p in points(tel).get(spec.name, []):
        if all(p.attributes.get(k) == v for k, v in labels.items()):
            total += p.count if isinstance(p, HistogramDataPoint) else p.value
    return total


# -- spans -------------------------------------------------------------------------------------


def test_each_stored_event_becomes_a_span_with_its_own_ids_and_the_run_span_parents_its_steps():
    tel, exporter = traced()
    tel.record_rows(a_run())
    spans = {s.attributes[c.SPAN_ATTR_EVENT_ID]: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"e_llm", "e_tool", "e_ret", "e_pol", "e_run"}
    run = spans["e_run"]
    assert run.parent is None
    assert f"{run.context.trace_id:032x}" == RUN_TRACE and f"{run.context.span_id:016x}" == RUN_SPAN
    assert {f"{s.context.trace_id:032x}" for s in spans.values()} == {RUN_TRACE}
    assert spans["e_llm"].parent.span_id == run.context.span_id
    assert f"{spans['e_tool'].parent.span_id:016x}" == "1000000000000001"
    assert (spans["e_run"].start_time, spans["e_run"].end_time) == (T0, T0 + 1_500_000_000)


@pytest.mark.parametrize(
    "event_id, name, attributes",
    [
        ("e_run", "invoke_agent answer", {c.ATTR_OPERATION: "invoke_agent", c.ATTR_AGENT_NAME: "answer",
                                          c.ATTR_REQUEST_MODEL: "gpt-4o", "hypermind.tag.env": "prod",
                                          c.ATTR_USAGE_INPUT_TOKENS: 800}),
        ("e_llm", "chat gpt-4o", {c.ATTR_OPERATION: "chat", c.ATTR_PROVIDER: "openai", "temp": 0.2,
                                  c.ATTR_USAGE_OUTPUT_TOKENS: 90, c.SPAN_ATTR_RUN_ID: "run_1"}),
        ("e_tool", "execute_tool crm", {c.ATTR_OPERATION: "execute_tool", c.ATTR_TOOL_NAME: "crm",
                                        c.ATTR_ERROR_TYPE: "ReadTimeout",
                                        c.SPAN_ATTR_FAILURE_CLASS: "tool_timeout",
                                        c.SPAN_ATTR_CLUSTER: "c0ffee0000000001"}),
        ("e_ret", "retrieval kb", {c.ATTR_OPERATION: "retrieval", c.ATTR_TOOL_NAME: "kb"}),
        ("e_pol", "hypermind.guardrail pii-filter", {c.ATTR_OPERATION: c.OP_GUARDRAIL,
                                                     c.SPAN_ATTR_POLICY_NAME: "pii-filter"}),
    ],
    ids=["a run is an invoke_agent span", "an llm step is a chat span with its provider and usage",
         "a tool step is an execute_tool span carrying its error and failure cluster",
         "a retrieval is a retrieval span", "a policy check is a namespaced guardrail span"],
)  # fmt: skip
def test_spans_follow_the_genai_conventions(event_id, name, attributes):
    tel, exporter = traced()
    tel.record_rows(a_run())
    span = next(s for s in exporter.get_finished_spans() if s.attributes[c.SPAN_ATTR_EVENT_ID] == event_id)
    assert span.name == name
    assert {k: span.attributes.get(k) for k in attributes} == attributes


def test_a_failed_step_has_an_error_status_and_a_good_one_is_unset():
    tel, exporter = traced()
    tel.record_rows(a_run())
    by_id = {s.attributes[c.SPAN_ATTR_EVENT_ID]: s for s in exporter.get_finished_spans()}
    assert by_id["e_tool"].status.status_code is StatusCode.ERROR
    assert by_id["e_tool"].status.description == "Read timed out. (read timeout=30)"
    assert by_id["e_llm"].status.status_code is StatusCode.UNSET


def test_a_root_run_span_never_becomes_the_child_of_a_span_active_in_the_ingest_thread():
    tel, exporter = traced()
    outer = TracerProvider().get_tracer("web")
    with outer.start_as_current_span("POST /api/v1/events"):
        tel.record_rows([stored_row()])
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and f"{span.context.trace_id:032x}" == RUN_TRACE


def test_without_a_tracer_provider_no_spans_are_made_and_metrics_still_are():
    tel = Telemetry.from_settings(Settings())
    assert tel.tracer_provider is None
    tel.record_rows(a_run())
    assert value(tel, c.AGENT_RUNS) == 1


# -- metrics -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, labels, expected",
    [
        (c.AGENT_RUNS, {"status": "ok", "project": "support", "scenario": "refund", "model": "gpt-4o"}, 1),
        (c.AGENT_RUN_DURATION, {"status": "ok"}, 1),
        (c.OPERATION_DURATION, {c.ATTR_OPERATION: "chat", c.ATTR_PROVIDER: "openai"}, 1),
        (c.OPERATION_DURATION, {c.ATTR_OPERATION: "execute_tool", c.ATTR_TOOL_NAME: "crm",
                                c.ATTR_ERROR_TYPE: "ReadTimeout"}, 1),
        (c.OPERATION_DURATION, {c.ATTR_OPERATION: "retrieval", c.ATTR_TOOL_NAME: "kb"}, 1),
        (c.OPERATION_DURATION, {c.ATTR_OPERATION: "invoke_agent"}, 1),
        (c.TOKEN_USAGE, {c.ATTR_TOKEN_TYPE: "input", c.ATTR_REQUEST_MODEL: "gpt-4o"}, 1),
        (c.AGENT_RUN_TOKENS, {c.ATTR_TOKEN_TYPE: "output", "estimated": "false"}, 1),
        (c.TOOL_CALLS, {"tool": "crm", "status": "error"}, 1),
        (c.STEP_ERRORS, {"kind": "tool", "error_class": "tool_timeout"}, 1),
        (c.POLICY_CHECKS, {"status": "ok", "scenario": "refund"}, 1),
        (c.FAILURES, {"failure_class": "tool_timeout", "cluster": "c0ffee0000000001"}, 0),
    ],
    ids=["a run counts once by outcome and dimensions", "a run's duration is observed",
         "a chat is a GenAI operation", "a failing tool call is an operation with its error.type",
         "a retrieval is an operation", "a run is an invoke_agent operation",
         "provider-reported tokens are GenAI token usage", "a run's tokens are observed per run",
         "a tool call counts by tool and outcome", "a failed step counts by kind and failure class",
         "a policy check counts by outcome", "a failed step of a run that ended ok is no failed run"],
)  # fmt: skip
def test_each_event_kind_lands_in_its_metrics(spec, labels, expected):
    tel = Telemetry.from_settings(Settings())
    tel.record_rows(a_run())
    assert value(tel, spec, **labels) == expected


def test_a_failed_run_counts_once_under_its_root_cause_cluster_and_its_failed_step_does_not():
    tel = Telemetry.from_settings(Settings())
    rows = a_run()
    rows[-1] = {**rows[-1], "status": "error", "error_type": "AgentError", "error_message": "tool crm failed",
                "failure_class": "tool_timeout", "cluster_id": "c0ffee0000000001"}  # the store's attribution
    tel.record_rows(rows)
    assert value(tel, c.FAILURES, failure_class="tool_timeout", cluster="c0ffee0000000001") == 1
    assert value(tel, c.STEP_ERRORS, kind="tool", error_class="tool_timeout") == 1


def test_durations_are_seconds_in_the_genai_buckets_and_tokens_in_the_token_buckets():
    tel = Telemetry.from_settings(Settings())
    tel.record_rows(a_run())
    pts = points(tel)
    chat = next(p for p in pts[c.OPERATION_DURATION.name] if p.attributes[c.ATTR_OPERATION] == "chat")
    assert tuple(chat.explicit_bounds) == c.DURATION_BUCKETS_S
    assert chat.sum == pytest.approx(0.5) and chat.bucket_counts[c.DURATION_BUCKETS_S.index(0.64)] == 1
    tokens = pts[c.TOKEN_USAGE.name][0]
    assert tuple(tokens.explicit_bounds) == c.TOKEN_BUCKETS
    run = pts[c.AGENT_RUN_DURATION.name][0]
    assert tuple(run.explicit_bounds) == c.RUN_DURATION_BUCKETS_S and run.sum == pytest.approx(1.5)


def test_estimated_token_proxies_stay_out_of_genai_token_usage_and_are_flagged_per_run():
    tel = Telemetry.from_settings(Settings())
    tel.record_rows(
        [
            stored_row(
                event_id="e1", kind="llm", input_tokens=10, tokens_estimated=True, span_id="1000000000000001"
            ),
            stored_row(event_id="e2", input_tokens=10, tokens_estimated=True),
        ]
    )
    assert value(tel, c.TOKEN_USAGE) == 0
    assert value(tel, c.AGENT_RUN_TOKENS, estimated="true") == 1


def test_histogram_exemplars_carry_the_run_id_and_the_events_trace_and_span_ids_never_as_series_labels():
    tel = Telemetry.from_settings(Settings())
    tel.record_rows(a_run())
    pts = points(tel)
    assert all(c.ATTR_RUN_ID not in p.attributes for series in pts.values() for p in series)
    (ex,) = pts[c.AGENT_RUN_DURATION.name][0].exemplars
    assert ex.filtered_attributes == {c.ATTR_RUN_ID: "run_1"}
    assert f"{ex.trace_id:032x}" == RUN_TRACE and f"{ex.span_id:016x}" == RUN_SPAN
    chat = next(p for p in pts[c.OPERATION_DURATION.name] if p.attributes[c.ATTR_OPERATION] == "chat")
    (chat_ex,) = chat.exemplars
    assert f"{chat_ex.span_id:016x}" == "1000000000000001"
    assert not any(p.exemplars for p in pts[c.AGENT_RUNS.name])  # counters carry no run id


def test_building_telemetry_leaves_the_global_otel_providers_alone():
    before_m, before_t = otel_metrics.get_meter_provider(), otel_trace.get_tracer_provider()
    tel, _ = traced()
    tel.record_rows(a_run())
    Telemetry.from_settings(Settings(), span_exporter=InMemorySpanExporter()).record_rows(a_run())
    assert otel_metrics.get_meter_provider() is before_m and otel_trace.get_tracer_provider() is before_t


def test_run_manager_with_the_store_hook_feeds_telemetry(store):
    tel = Telemetry.from_settings(Settings(), admissions=store.label_admissions).attach(store)
    tel.attach(store)  # attaching twice does not double count
    with RunManager(store, project="support") as rm:
        for i in range(3):
            with rm.run("answer", scenario="refund", model="gpt-4o") as run:
                with run.llm() as llm:
                    llm.set_usage(input_tokens=100, output_tokens=10)
                with run.tool("crm_lookup"):
                    pass
                if i == 2:
                    run.fail("gave up")
    assert value(tel, c.AGENT_RUNS, status="ok") == 2 and value(tel, c.AGENT_RUNS, status="error") == 1
    assert value(tel, c.TOOL_CALLS, tool="crm_lookup") == 3
    assert value(tel, c.TOKEN_USAGE, **{c.ATTR_TOKEN_TYPE: "input"}) == 3


# -- never raising -----------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_with_the_otlp_endpoint_down_recording_does_not_wait_or_raise_and_the_lost_spans_are_counted():
    settings = Settings(otlp_endpoint=f"http://127.0.0.1:{closed_port()}", otlp_timeout_ms=300)
    tel = Telemetry.from_settings(settings)
    started = time.perf_counter()
    tel.record_rows(a_run())
    assert time.perf_counter() - started < 0.5  # the batch processor exports off this thread
    tel.force_flush()
    lost = tel.losses.snapshot()
    assert lost[c.DROP_SPAN_EXPORT_FAILED] == 5
    assert value(tel, c.TELEMETRY_DROPPED, reason=c.DROP_SPAN_EXPORT_FAILED) == 5
    assert value(tel, c.AGENT_RUNS) == 1  # metrics are unaffected
    tel.shutdown()


class RaisingExporter(SpanExporter):
    def export(self, spans):
        raise RuntimeError("exporter bug")

    def shutdown(self) -> None:
        raise RuntimeError("exporter bug")


def test_an_exporter_that_raises_is_contained_and_counted():
    tel = Telemetry.from_settings(Settings(), span_exporter=RaisingExporter())
    tel.record_rows(a_run())
    tel.force_flush()
    tel.shutdown()
    assert tel.losses.snapshot()[c.DROP_SPAN_EXPORTER_ERROR] == 5
    assert value(tel, c.AGENT_RUNS) == 1


def test_a_span_processor_that_raises_loses_the_span_not_the_metrics():
    class Exploding(SimpleSpanProcessor):
        def on_end(self, span):
            raise RuntimeError("processor bug")

    reader = InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(Exploding(InMemorySpanExporter()))
    tel = Telemetry(meter_provider=make_meter_provider(reader), reader=reader, tracer_provider=provider)
    tel.record_rows(a_run())
    assert tel.losses.snapshot()[c.DROP_SPAN_ERROR] == 5
    assert value(tel, c.AGENT_RUNS) == 1 and value(tel, c.TOOL_CALLS) == 1


@pytest.mark.parametrize(
    "bad",
    [
        stored_row(attributes="{not json", kind="llm"),
        stored_row(attributes='["a", "list"]', kind="llm"),
        stored_row(tags="nope"),
        stored_row(trace_id="xyz"),
        stored_row(span_id="0000000000000000"),
        stored_row(parent_span_id="short"),
        stored_row(start_ns=T0 + 10, end_ns=T0),
        stored_row(start_ns="yesterday"),
        stored_row(input_tokens="many"),
        stored_row(input_tokens=-3),
        stored_row(kind="agent"),
        stored_row(status="maybe"),
        stored_row(run_id=None),
        stored_row(model=["gpt-4o"]),
        {"kind": "run"},
        None,
        "not a row",
    ],
    ids=["attributes that are not JSON", "attributes that are not an object", "tags that are not JSON",
         "a trace id that is not hex", "an all-zero span id", "a short parent span id",
         "an end before the start",
         "a start that is not a number", "token counts that are not numbers", "negative token counts",
         "an unknown kind", "an unknown status", "no run id", "a dimension that is not a string",
         "a row missing columns", "no row at all", "a string instead of a row"],
)  # fmt: skip
def test_a_malformed_row_is_skipped_and_counted_and_the_rest_of_the_batch_is_recorded(bad):
    tel, exporter = traced()
    tel.record_rows([bad, stored_row(event_id="good", run_id="run_2")])
    assert tel.losses.snapshot()[c.DROP_MALFORMED_EVENT] == 1
    assert value(tel, c.AGENT_RUNS) == 1
    assert [s.attributes[c.SPAN_ATTR_RUN_ID] for s in exporter.get_finished_spans()] == ["run_2"]


def test_rows_that_are_not_iterable_are_counted_not_raised():
    tel = Telemetry.from_settings(Settings())
    tel.record_rows(42)  # type: ignore[arg-type]
    assert tel.losses.snapshot()[c.DROP_MALFORMED_EVENT] == 1


def test_an_sdk_instrument_that_raises_is_counted_as_a_record_error():
    tel = Telemetry.from_settings(Settings())

    class Broken:
        def add(self, *a, **k):
            raise RuntimeError("sdk bug")

    tel._runs = Broken()  # a stand-in for a failing SDK instrument
    tel.record_rows([stored_row()])
    assert tel.losses.snapshot()[c.DROP_RECORD_ERROR] == 1


def test_non_primitive_event_attributes_stay_off_spans_without_a_loss():
    tel, exporter = traced()
    tel.record_rows([stored_row(attributes='{"nested": {"a": 1}, "list": [1, 2], "ok": "yes"}')])
    (span,) = exporter.get_finished_spans()
    assert span.attributes["ok"] == "yes" and "nested" not in span.attributes
    assert sum(tel.losses.snapshot().values()) == 0


@pytest.mark.parametrize(
    "settings, message",
    [
        (Settings(label_budgets="model=0"), "HYPERMIND_LABEL_BUDGETS"),
        (Settings(label_budgets="colour=3"), "HYPERMIND_LABEL_BUDGETS"),
        (Settings(otlp_endpoint="collector:4318"), "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ],
    ids=["a zero budget", "a budget for a label that is not capped", "an endpoint without a scheme"],
)
def test_configuration_mistakes_fail_at_start_up_naming_the_setting(settings, message):
    with pytest.raises(ConfigError, match=message):
        Telemetry.from_settings(settings)


def test_spans_are_exported_through_a_batch_processor_only_when_an_exporter_is_configured():
    exporter = InMemorySpanExporter()
    tel = Telemetry.from_settings(Settings(), span_exporter=exporter)
    tel.record_rows(a_run())
    tel.force_flush()
    assert len(exporter.get_finished_spans()) == 5
    provider = make_tracer_provider(InMemorySpanExporter(), tel.losses, batch=False)
    assert provider is not tel.tracer_provider
