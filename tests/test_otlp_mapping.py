"""The span → run-event mapping (pure): roles per convention, errors, bounded attributes, run ids,
the configured attribute keys and the synthesised run of a trace whose root never came."""

from __future__ import annotations

import orjson
import pytest

from hypermindlabs.ingest.otlp_decode import SpanEvent, SpanRecord
from hypermindlabs.ingest.otlp_mapping import (
    ATTRIBUTES_BUDGET,
    AttributeKeys,
    TraceState,
    bounded_attributes,
    classify,
    map_spans,
)
from hypermindlabs.ingest.otlp_synth import synthesize_run
from hypermindlabs.run_events import parse_event

T0 = 1_767_222_000 * 10**9
TRACE = "5b8efff798038103d269b633813fc60c"


def span(span_id="00000000000000a1", parent="", attrs=None, *, name="s", status=0, message="", events=(),
         resource=None, start=T0, end=T0 + 10**6) -> SpanRecord:  # fmt: skip
    return SpanRecord(TRACE, span_id, parent, False, name, start, end, status, message, attrs or {},
                      tuple(events), resource or {"service.name": "svc"}, "scope")  # fmt: skip


@pytest.mark.parametrize(
    "attrs, role",
    [
        ({"gen_ai.operation.name": "chat"}, "llm"),
        ({"gen_ai.operation.name": "text_completion"}, "llm"),
        ({"gen_ai.operation.name": "generate_content"}, "llm"),
        ({"gen_ai.operation.name": "embeddings"}, "retrieval"),
        ({"gen_ai.operation.name": "retrieval"}, "retrieval"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"gen_ai.operation.name": "invoke_agent"}, "agent"),
        ({"gen_ai.operation.name": "invoke_workflow"}, "agent"),
        ({"gen_ai.operation.name": "create_agent"}, None),
        ({"openinference.span.kind": "LLM"}, "llm"),
        ({"openinference.span.kind": "EMBEDDING"}, "retrieval"),
        ({"openinference.span.kind": "RETRIEVER"}, "retrieval"),
        ({"openinference.span.kind": "RERANKER"}, "retrieval"),
        ({"openinference.span.kind": "TOOL"}, "tool"),
        ({"openinference.span.kind": "AGENT"}, "agent"),
        ({"openinference.span.kind": "CHAIN"}, "chain"),
        ({"openinference.span.kind": "GUARDRAIL"}, "policy"),
        ({"openinference.span.kind": "EVALUATOR"}, None),
        ({"traceloop.span.kind": "workflow"}, "agent"),
        ({"traceloop.span.kind": "agent"}, "agent"),
        ({"traceloop.span.kind": "tool"}, "tool"),
        ({"traceloop.span.kind": "task"}, None),
        ({"llm.request.type": "chat"}, "llm"),
        ({"llm.request.type": "embedding"}, "retrieval"),
        ({"hypermind.kind": "policy", "gen_ai.operation.name": "chat"}, "policy"),
        ({"http.method": "GET"}, None),
    ],
    ids=lambda v: str(v),
)
def test_each_convention_s_span_kind_maps_to_the_documented_role(attrs, role):
    assert classify(span(attrs=attrs)) == role


def test_a_root_model_call_is_both_the_run_and_its_llm_step_with_the_tokens_on_the_step_only():
    root = span(attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                       "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": "3"})  # fmt: skip
    out = map_spans([root], {}, AttributeKeys())
    run, step = out.mapped[0].objects
    assert (run["kind"], step["kind"], run["run_id"], step["run_id"]) == ("run", "llm", TRACE, TRACE)
    assert "usage" not in run and step["usage"] == {"input_tokens": 10, "output_tokens": 3}
    assert step["parent_span_id"] == run["span_id"] == root.span_id != step["span_id"]
    assert run["event_id"] == f"otlp-{TRACE}-{root.span_id}" and step["event_id"] == run["event_id"] + "-step"
    for obj in (run, step):
        parse_event(obj)  # both are valid contract events


def test_errors_come_from_status_error_type_and_exception_events_in_that_order_of_precedence():
    exc = SpanEvent("exception", T0, {"exception.type": "openai.RateLimitError", "exception.message": "429 slow down"})
    cases = [
        (span(status=2, message="boom"), {"type": "error", "message": "boom"}),
        (span(attrs={"error.type": "TimeoutError"}), {"type": "TimeoutError", "message": None}),
        (span(status=2, attrs={"error.type": "<class 'openai.APIError'>"}), {"type": "openai.APIError", "message": None}),
        (span(status=2, message="m", attrs={"error.type": "X"}, events=[exc]),
         {"type": "openai.RateLimitError", "message": "429 slow down"}),
        (span(status=1, attrs={"error.type": "X"}), None),  # an explicit OK wins
        (span(events=[exc]), None),  # a recorded, handled exception is not a failure
    ]  # fmt: skip
    for sp, want in cases:
        obj = map_spans([sp], {}, AttributeKeys()).mapped[0].objects[0]
        assert obj.get("error") == want and obj["status"] == ("error" if want else "ok")


def test_attributes_over_the_budget_are_cut_and_then_dropped_with_their_names_kept():
    attrs = {"input.value": "x" * 40_000, "output.value": "y" * 40_000, "small": 1,
             "llm.input_messages": ["z" * 30_000]}  # fmt: skip
    out = bounded_attributes(attrs)
    assert len(orjson.dumps(out)) <= ATTRIBUTES_BUDGET
    assert out["small"] == 1 and out["input.value"].endswith("…")
    assert sorted(out["hypermind.truncated"]) == ["input.value", "llm.input_messages", "output.value"]
    big = bounded_attributes({f"k{i}": "v" * 1_900 for i in range(60)})
    assert len(orjson.dumps(big)) <= ATTRIBUTES_BUDGET and big["hypermind.dropped"]
    assert len(big) - 1 + len(big["hypermind.dropped"]) == 60


def test_project_scenario_and_tags_come_from_the_configured_keys_span_first_then_resource():
    keys = AttributeKeys.parse("app.project,service.name", "app.flow", "tier=customer.tier,release=service.version")
    root = span(attrs={"app.flow": "refund", "customer.tier": "gold", "hypermind.tag.team": "billing"},
                resource={"service.name": "svc", "app.project": "support", "service.version": "9.1"})  # fmt: skip
    run = map_spans([root], {}, keys).mapped[0].objects[0]
    assert (run["project"], run["scenario"]) == ("support", "refund")
    assert run["tags"] == {"tier": "gold", "release": "9.1", "team": "billing"}
    with pytest.raises(ValueError, match="tag=attribute.key"):
        AttributeKeys.parse("p", "s", "oops")


def test_a_trace_already_known_keeps_its_run_id_over_a_later_run_id_attribute():
    child = span("00000000000000b2", "00000000000000a1", {"gen_ai.operation.name": "execute_tool",
                                                         "hypermind.run_id": "other"})  # fmt: skip
    out = map_spans([child], {TRACE: TraceState("run-7", "open")}, AttributeKeys())
    assert out.mapped[0].objects[0]["run_id"] == "run-7"
    fresh = map_spans([child], {}, AttributeKeys())
    assert fresh.mapped[0].objects[0]["run_id"] == "other"


def test_invalid_ids_and_times_reject_the_span_alone_naming_the_field():
    bad = [
        SpanRecord("ab", "00000000000000a1", "", False, "x", T0, T0, 0, "", {}, (), {}, ""),
        SpanRecord(TRACE, "0000000000000000", "", False, "x", T0, T0, 0, "", {}, (), {}, ""),
        SpanRecord(TRACE, "00000000000000a3", "", False, "x", 0, T0, 0, "", {}, (), {}, ""),
    ]
    good = span("00000000000000a4")
    out = map_spans([*bad, good], {}, AttributeKeys())
    assert [r.field for r in out.rejected] == ["trace_id", "span_id", "start_time_unix_nano"]
    assert [m.span.span_id for m in out.mapped] == ["00000000000000a4"]


def test_the_synthesised_run_spans_its_children_takes_the_missing_root_id_and_the_last_top_level_outcome():
    def child(sid, parent, kind, start, end, status="ok", error=None, model=None):
        return {"span_id": sid, "parent_span_id": parent, "kind": kind, "start_time_unix_nano": start,
                "end_time_unix_nano": end, "status": status, "error": error, "model": model, "project": None,
                "scenario": None}  # fmt: skip

    kids = [
        child("0000000000000001", "00000000000000ff", "llm", T0, T0 + 5, model="gpt-4o"),
        child("0000000000000002", "00000000000000ff", "tool", T0 + 6, T0 + 9, "error", {"type": "E", "message": "m"}),
        child("0000000000000003", "0000000000000002", "llm", T0 + 7, T0 + 12, model="gpt-4o"),
    ]
    run = synthesize_run(TRACE, "r", kids, {"project": "p", "tags": {"env": "prod"}}, [], 300)
    assert run is not None
    ev = parse_event(run)
    assert (ev.span_id, ev.start_time_unix_nano, ev.end_time_unix_nano) == ("00000000000000ff", T0, T0 + 12)
    assert (ev.status, ev.error_type, ev.model, ev.project, ev.tags) == ("error", "E", "gpt-4o", "p", (("env", "prod"),))
    assert synthesize_run(TRACE, "r", [], {}, [], 300) is None
    held = [{"span_id": "00000000000000aa", "parent_span_id": "00000000000000ff", "name": "GET /x", "status": "ok",
             "start_time_unix_nano": T0, "end_time_unix_nano": T0 + 3}]  # fmt: skip
    only_held = parse_event(synthesize_run(TRACE, "r", [], {"project": "p"}, held, 300))
    assert (only_held.span_id, only_held.end_time_unix_nano, only_held.status) == ("00000000000000ff", T0 + 3, "ok")
    assert [h["name"] for h in only_held.attributes["hypermind.spans"]] == ["GET /x"]
