"""POST /v1/traces end to end, on SQLite and PostgreSQL: real OTLP/HTTP exports from the OpenTelemetry
SDK's own exporter to a real server, OTLP/JSON fixtures in each convention, the OTLP/HTTP answers
(success, partial success, 400, 429/503 with Retry-After), idempotent retries, order across exports
and the root timeout."""

from __future__ import annotations

import copy
import gzip
import json
import threading
import time
import uuid

import psycopg
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from hypermindlabs import conventions as c
from hypermindlabs.cli import main
from hypermindlabs.config import Settings
from hypermindlabs.store import EventStore
from hypermindlabs.web import create_app
from tests.conftest import FIXED_NOW_NS, PG_URL, open_pipeline, postgres_available, require
from tests.otlp_support import BAD, DATA, GOOD, fixture, get_json, http, serve

JSON = {"Content-Type": "application/json"}
PROTO = {"Content-Type": "application/x-protobuf"}
WINDOW = "from=2025-12-31T00:00:00Z&to=2026-01-01T00:00:00Z"


def count_events(store: EventStore) -> int:
    return store.count_events()


def metric_total(body: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def agent_run(tracer, *, fail_tool: bool = True) -> str:
    """A small agent: invoke_agent → chat, execute_tool (timing out), chat, and one plain span."""
    with tracer.start_as_current_span(
        "invoke_agent support",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
                    "hypermind.scenario": "refund_request"},
    ) as root:  # fmt: skip
        with tracer.start_as_current_span("chat gpt-4o-mini") as s:
            s.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                              "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 812,
                              "gen_ai.usage.output_tokens": 97})  # fmt: skip
        with tracer.start_as_current_span("execute_tool crm_lookup") as s:
            s.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "crm_lookup"})
            if fail_tool:
                s.record_exception(TimeoutError("crm_lookup timed out after 30s"))
                s.set_attribute("error.type", "TimeoutError")
                s.set_status(Status(StatusCode.ERROR, "crm_lookup timed out after 30s"))
        with tracer.start_as_current_span("chat gpt-4o-mini") as s:
            s.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                              "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1400,
                              "gen_ai.usage.output_tokens": 210})  # fmt: skip
        with tracer.start_as_current_span("render answer"):
            pass
        return format(root.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("processor", ["one export per span, root last", "one batch, gzip"])
def test_spans_exported_by_the_sdk_otlp_http_exporter_become_one_run_with_steps_tokens_errors_and_clusters(
    pipeline, store, processor
):
    app = create_app(Settings(database_url="unused"), pipeline=pipeline)
    with serve(app) as base:
        simple = processor.startswith("one export")
        exporter = OTLPSpanExporter(
            endpoint=f"{base}/v1/traces", compression=Compression.NoCompression if simple else Compression.Gzip
        )
        provider = TracerProvider(
            resource=Resource.create({"service.name": "support-agent", "service.version": "2.4.0",
                                      "deployment.environment.name": "prod"})  # fmt: skip
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter))
        trace_id = agent_run(provider.get_tracer("support_agent"))
        assert provider.force_flush(10_000)
        provider.shutdown()

        run = get_json(f"{base}/api/v1/runs/{trace_id}")
        assert run["complete"] is True
        r = run["run"]
        assert (r["name"], r["status"], r["project"], r["scenario"], r["model"]) == (
            "invoke_agent support", "ok", "support-agent", "refund_request", "gpt-4o-mini",
        )  # fmt: skip
        assert r["tags"] == {"env": "prod", "release": "2.4.0"}
        assert [h["name"] for h in r["attributes"]["hypermind.spans"]] == ["render answer"]
        steps = [(e["kind"], e["name"], e["tool"], e["usage"]["input_tokens"], e["usage"]["output_tokens"], e["status"])
                 for e in run["events"] if e["kind"] != "run"]  # fmt: skip
        assert steps == [
            ("llm", "chat gpt-4o-mini", None, 812, 97, "ok"),
            ("tool", "execute_tool crm_lookup", "crm_lookup", None, None, "error"),
            ("llm", "chat gpt-4o-mini", None, 1400, 210, "ok"),
        ]
        assert all(e["project"] == "support-agent" and e["trace_id"] == trace_id for e in run["events"])
        tool = next(e for e in run["events"] if e["kind"] == "tool")
        assert tool["error"]["type"] == "TimeoutError"
        assert tool["error"]["message"] == "crm_lookup timed out after 30s"
        assert tool["failure_class"] == "tool_timeout"

        listed = get_json(f"{base}/api/v1/runs?project=support-agent&tag.env=prod&from=now-1h")["runs"]
        assert [x["run_id"] for x in listed] == [trace_id]
        summary = get_json(f"{base}/api/v1/metrics/summary?from=now-1h")["rows"][0]
        assert (summary["runs"], summary["tokens"]["input"], summary["tokens"]["output"]) == (1, 2212, 307)
        assert (summary["llm_calls"], summary["tool_calls"]) == (2, 1)
        clusters = get_json(f"{base}/api/v1/failures/clusters?from=now-1h")["clusters"]
        assert [(k["failure_class"], k["sample_run_ids"]) for k in clusters] == [("tool_timeout", [trace_id])]

        _, _, body = http("GET", f"{base}/metrics")
        prom = body.decode()
        assert metric_total(prom, c.TOKEN_USAGE.prom_sum, gen_ai_token_type="input", gen_ai_request_model="gpt-4o-mini") == 2212
        assert metric_total(prom, c.TOKEN_USAGE.prom_sum, gen_ai_token_type="output") == 307
        assert metric_total(prom, c.PROM_AGENT_RUNS, status="ok") == 1
        assert metric_total(prom, c.PROM_TOOL_CALLS, status="error") == 1


def _check_fixture(client, store, expected) -> None:
    for run_id, want in expected["runs"].items():
        trace = client.get(f"/api/v1/runs/{run_id}").get_json()
        assert trace["complete"], run_id
        run = trace["run"]
        got = {k: run[k] for k in ("name", "status", "project", "scenario", "model", "tags")}
        got["held"] = [h["name"] for h in run["attributes"].get("hypermind.spans", [])]
        assert got == want
        assert {e["project"] for e in trace["events"]} == {want["project"]}, "steps take the run's project"
    steps = []
    for run_id in expected["runs"]:
        for e in client.get(f"/api/v1/runs/{run_id}").get_json()["events"]:
            if e["kind"] != "run":
                steps.append([run_id, e["kind"], e["name"], e["model"], e["tool"], e["usage"]["input_tokens"],
                              e["usage"]["output_tokens"], e["status"], (e["error"] or {}).get("type")])  # fmt: skip
    assert sorted(steps, key=str) == sorted(expected["steps"], key=str)
    summary = client.get(f"/api/v1/metrics/summary?{WINDOW}").get_json()["rows"][0]
    assert summary["runs"] == len(expected["runs"])
    assert {"input": summary["tokens"]["input"], "output": summary["tokens"]["output"]} == expected["tokens"]
    with store.engine.connect() as conn:
        classes = conn.execute(text("SELECT DISTINCT failure_class FROM events WHERE failure_class IS NOT NULL"))
        assert sorted(classes.scalars()) == expected["failure_classes"]
    clusters = client.get(f"/api/v1/failures/clusters?{WINDOW}").get_json()["clusters"]
    assert sorted({k["failure_class"] for k in clusters}) == expected["failure_classes"]


@pytest.mark.parametrize("name", GOOD)
def test_each_convention_fixture_maps_to_the_documented_runs_steps_tokens_and_failure_classes(client, store, name):
    body, expected = fixture(name)
    r = client.post("/v1/traces", data=body, headers=JSON)
    assert r.status_code == 200 and r.get_json() == {}
    _check_fixture(client, store, expected)


@pytest.mark.parametrize("name", GOOD)
def test_a_fixture_sent_as_protobuf_in_any_split_stores_the_same_as_one_json_export(client, store, name):
    """The same spans as protobuf, one export per span in reverse order (children before roots)."""
    from google.protobuf import json_format

    from hypermindlabs.ingest.otlp_decode import _fix_ids

    body, expected = fixture(name)
    obj = json.loads(body)
    _fix_ids(obj)
    req = json_format.ParseDict(obj, ExportTraceServiceRequest())
    singles = []
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                one = ExportTraceServiceRequest()
                r1 = one.resource_spans.add()
                r1.resource.CopyFrom(rs.resource)
                s1 = r1.scope_spans.add()
                s1.scope.CopyFrom(ss.scope)
                s1.spans.add().CopyFrom(sp)
                singles.append(one.SerializeToString())
    for payload in reversed(singles):
        r = client.post("/v1/traces", data=gzip.compress(payload), headers={**PROTO, "Content-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-protobuf"
        resp = ExportTraceServiceResponse.FromString(r.data)
        assert resp.partial_success.rejected_spans == 0, resp.partial_success.error_message
    _check_fixture(client, store, expected)


@pytest.mark.parametrize("name", BAD)
def test_an_undecodable_json_body_answers_400_with_a_message_and_stores_nothing(client, store, name):
    r = client.post("/v1/traces", data=(DATA / "bad" / name).read_bytes(), headers=JSON)
    assert r.status_code == 400
    body = r.get_json()
    assert body["code"] == 3 and body["message"] and body["error"] == body["message"] and body["field"] == "body"
    assert count_events(store) == 0


@pytest.mark.parametrize(
    "what, data, headers, needle",
    [
        ("truncated protobuf", None, PROTO, "malformed protobuf"),
        ("random bytes as protobuf", b"\xff\xff\xff\xff\x0f\x0a", PROTO, "malformed protobuf"),
        ("gzip header over garbage", b"\x1f\x8b\x08\x00garbage", {**PROTO, "Content-Encoding": "gzip"}, "not valid gzip"),
        ("an unknown content encoding", b"{}", {**JSON, "Content-Encoding": "br"}, "unsupported Content-Encoding"),
    ],
)
def test_an_undecodable_protobuf_body_answers_400_with_a_status_message_and_stores_nothing(
    client, store, what, data, headers, needle
):
    if data is None:
        body, _ = fixture("genai_agent")
        r = client.post("/v1/traces", data=body, headers=JSON)
        assert r.status_code == 200
        before = count_events(store)
        from google.protobuf import json_format

        from hypermindlabs.ingest.otlp_decode import _fix_ids

        obj = json.loads(body)
        _fix_ids(obj)
        data = json_format.ParseDict(obj, ExportTraceServiceRequest()).SerializeToString()[:-7]
    else:
        before = 0
    r = client.post("/v1/traces", data=data, headers=headers)
    assert r.status_code == 400, what
    if headers["Content-Type"] == "application/x-protobuf":
        status = status_pb2.Status.FromString(r.data)
        assert status.code == 3 and needle in status.message
    else:
        assert needle in r.get_json()["error"]
    assert count_events(store) == before


def test_an_unsupported_content_type_answers_415_naming_it(client, store):
    r = client.post("/v1/traces", data=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.get_json()["field"] == "Content-Type" and "unsupported Content-Type" in r.get_json()["error"]


def test_a_retried_export_is_idempotent(client, store):
    body, _ = fixture("openinference_chain")
    assert client.post("/v1/traces", data=body, headers=JSON).status_code == 200
    first = count_events(store)
    metrics_first = client.get("/metrics").get_data(as_text=True)
    for _ in range(2):
        r = client.post("/v1/traces", data=body, headers=JSON)
        assert r.status_code == 200 and r.get_json() == {}
    assert count_events(store) == first == 6
    assert client.get("/metrics").get_data(as_text=True) == metrics_first
    assert client.get(f"/api/v1/metrics/summary?{WINDOW}").get_json()["rows"][0]["runs"] == 1


def test_a_span_with_an_invalid_field_is_rejected_alone_while_its_siblings_are_stored(client, store):
    body, _ = fixture("genai_agent")
    obj = json.loads(body)
    spans = obj["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for kv in spans[1]["attributes"]:  # the first chat span: a negative token count
        if kv["key"] == "gen_ai.usage.input_tokens":
            kv["value"] = {"intValue": "-5"}
    spans[3]["endTimeUnixNano"] = str(int(spans[3]["startTimeUnixNano"]) - 1)  # retrieval ends before it starts
    spans[4]["traceId"] = "not-hex"
    r = client.post("/v1/traces", data=json.dumps(obj), headers=JSON)
    assert r.status_code == 200
    partial = r.get_json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 3
    msg = partial["errorMessage"]
    assert "0000000000000a01" in msg and "usage.input_tokens" in msg
    assert "0000000000000a03" in msg and "end_time" in msg
    assert "0000000000000a04" in msg and "trace_id" in msg
    kinds = sorted(e["kind"] for e in client.get("/api/v1/runs/5b8efff798038103d269b633813fc60c").get_json()["events"])
    assert kinds == ["run", "tool"]
    assert {e["kind"] for e in client.get("/api/v1/runs/0af7651916cd43dd8448eb211c80319c").get_json()["events"]} == {
        "run", "llm"
    }


def _split(name: str) -> tuple[bytes, bytes]:
    """A fixture's export split in two: every non-root span first, the roots after."""
    body, _ = fixture(name)
    children, roots = json.loads(body), json.loads(body)
    for part, keep_roots in ((children, False), (roots, True)):
        for rs in part["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                ss["spans"] = [s for s in ss["spans"] if ("parentSpanId" not in s) == keep_roots]
    return json.dumps(children).encode(), json.dumps(roots).encode()


@pytest.mark.parametrize("name", GOOD)
def test_children_exported_before_their_root_still_form_one_run(client, store, name):
    kids, roots = _split(name)
    _, expected = fixture(name)
    assert client.post("/v1/traces", data=kids, headers=JSON).get_json() == {}
    seen = [client.get(f"/api/v1/runs/{run_id}") for run_id in expected["runs"]]
    opened = [r.get_json() for r in seen if r.status_code == 200]
    assert opened and all(t["complete"] is False and t["events"] for t in opened), "children visible, run open"
    assert client.get(f"/api/v1/runs?{WINDOW}").get_json()["runs"] == [], "no run is listed before it ends"
    assert client.post("/v1/traces", data=roots, headers=JSON).get_json() == {}
    _check_fixture(client, store, expected)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_a_root_that_never_arrives_is_synthesised_after_the_timeout_and_a_late_root_is_refused(pipeline, store):
    clock = Clock(FIXED_NOW_NS)
    app = create_app(Settings(database_url="unused", otlp_root_timeout_s=300), pipeline=pipeline, clock=clock)
    client = app.test_client()
    kids, roots = _split("openllmetry_workflow")
    run_id = "a3ce929d0e0e47364bf92f3577b34da6"
    assert client.post("/v1/traces", data=kids, headers=JSON).get_json() == {}
    clock.now += 299 * 10**9
    other, _ = fixture("openinference_chain")
    assert client.post("/v1/traces", data=other, headers=JSON).status_code == 200  # a sweep at ingest: too early
    assert client.get(f"/api/v1/runs/{run_id}").get_json()["complete"] is False
    clock.now += 2 * 10**9
    assert client.post("/v1/traces", data=other, headers=JSON).status_code == 200  # the sweep now closes it
    trace = client.get(f"/api/v1/runs/{run_id}").get_json()
    run = trace["run"]
    assert trace["complete"] is True
    assert run["event_id"] == f"otlp-{run_id}-synthesized"
    assert run["span_id"] == "1000000000000001", "the synthesised run takes the missing root's span id"
    assert run["attributes"]["hypermind.synthesized"] is True
    assert [h["name"] for h in run["attributes"]["hypermind.spans"]] == ["classify.task"]
    # The last top-level child (refund_api) failed: so did the run, with its error, and triage agrees.
    assert (run["status"], run["error"]["type"], run["failure_class"]) == ("error", "ConnectionError", "upstream_error")
    # Resource attributes survive (the children carry them); the root's own tag was lost with it.
    assert (run["project"], run["model"], run["tags"]) == ("ticket-service", "gpt-4o", {"env": "staging"})
    assert run["start_time_unix_nano"] == min(e["start_time_unix_nano"] for e in trace["events"] if e["kind"] != "run")
    listed = client.get(f"/api/v1/runs?{WINDOW}&status=error").get_json()["runs"]
    assert [x["run_id"] for x in listed] == [run_id]

    r = client.post("/v1/traces", data=roots, headers=JSON)
    partial = r.get_json()["partialSuccess"]
    assert r.status_code == 200 and int(partial["rejectedSpans"]) == 1
    assert "synthesised" in partial["errorMessage"] and "1000000000000001" in partial["errorMessage"]
    again = client.get(f"/api/v1/runs/{run_id}").get_json()
    assert [e["event_id"] for e in again["events"]] == [e["event_id"] for e in trace["events"]]


def test_the_cli_sweep_closes_traces_whose_root_timed_out(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'sweep.db'}"
    pipeline = open_pipeline(db)
    store = pipeline.store
    # Spans received long ago (the injected clock): the CLI runs on the wall clock, past the timeout.
    app = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: FIXED_NOW_NS)
    kids, _ = _split("genai_agent")
    assert app.test_client().post("/v1/traces", data=kids, headers=JSON).status_code == 200
    assert store.get_run("5b8efff798038103d269b633813fc60c")["complete"] is False
    assert main(["otlp-sweep", "--database-url", db]) == 0
    assert "1 runs synthesised" in capsys.readouterr().out
    run = store.get_run("5b8efff798038103d269b633813fc60c")
    assert run["complete"] and run["run"]["status"] == "ok" and run["run"]["model"] == "gpt-4o-mini"
    assert main(["otlp-sweep", "--database-url", db]) == 0
    assert "0 runs synthesised" in capsys.readouterr().out
    store.close()


def test_a_run_id_attribute_names_the_run_and_later_spans_of_the_trace_follow_it(client, store):
    body, _ = fixture("openinference_chain")
    obj = json.loads(body)
    spans = obj["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["attributes"].append({"key": "hypermind.run_id", "value": {"stringValue": "run-2026-0042"}})
    late = copy.deepcopy(obj)
    obj["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans[:3]
    late["resourceSpans"][0]["scopeSpans"][0]["spans"] = late["resourceSpans"][0]["scopeSpans"][0]["spans"][3:]
    assert client.post("/v1/traces", data=json.dumps(obj), headers=JSON).get_json() == {}
    partial = client.post("/v1/traces", data=json.dumps(late), headers=JSON).get_json()["partialSuccess"]
    # The evaluator span fits no kind and came after its run was stored: refused, said so, not lost silently.
    assert int(partial["rejectedSpans"]) == 1
    assert "00f067aa0ba90206" in partial["errorMessage"] and "after run 'run-2026-0042' was stored" in partial[
        "errorMessage"
    ]
    trace = client.get("/api/v1/runs/run-2026-0042").get_json()
    assert trace["complete"] and len(trace["events"]) == 6
    assert client.get("/api/v1/runs/4bf92f3577b34da6a3ce929d0e0e4736").status_code == 404


def test_the_endpoint_requires_the_bearer_token_when_one_is_configured(pipeline, store):
    app = create_app(Settings(database_url="unused", api_token="s3cret"), pipeline=pipeline, clock=lambda: FIXED_NOW_NS)
    client = app.test_client()
    body, _ = fixture("genai_agent")
    r = client.post("/v1/traces", data=body, headers=JSON)
    assert r.status_code == 401 and r.get_json()["field"] == "Authorization"
    assert count_events(store) == 0
    r = client.post("/v1/traces", data=body, headers={**JSON, "Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and count_events(store) == 7


def test_the_sdk_exporter_with_a_token_header_reaches_a_protected_server(pipeline, store):
    app = create_app(Settings(database_url="unused", api_token="s3cret"), pipeline=pipeline)
    with serve(app) as base:
        provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
        exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers={"Authorization": "Bearer s3cret"})
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace_id = agent_run(provider.get_tracer("t"), fail_tool=False)
        provider.shutdown()
        assert get_json(f"{base}/api/v1/runs/{trace_id}", token="s3cret")["complete"] is True


@pytest.mark.postgres
def test_a_store_that_cannot_take_the_batch_answers_503_or_429_with_retry_after(tmp_path):
    """A real lock on the events table: the export waiting on it fails its lock timeout (503); an
    export beyond the concurrency limit while it waits is answered 429 at once. Both retryable."""
    require(postgres_available(), f"PostgreSQL at {PG_URL}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    pipeline = open_pipeline(f"{PG_URL}{sep}options=-csearch_path%3D{schema}%20-clock_timeout%3D1500")
    store = pipeline.store
    app = create_app(
        Settings(database_url="unused", otlp_max_concurrent=1, otlp_retry_after_s=7), pipeline=pipeline,
        clock=lambda: FIXED_NOW_NS,
    )  # fmt: skip
    body, _ = fixture("genai_agent")
    locker = psycopg.connect(PG_URL + f"{sep}options=-csearch_path%3D{schema}")
    try:
        with serve(app) as base:
            locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")  # held until rollback
            first: dict[str, object] = {}

            def slow() -> None:
                first["answer"] = http("POST", f"{base}/v1/traces", body, JSON)

            t = threading.Thread(target=slow)
            t.start()
            time.sleep(0.5)
            status, headers, payload = http("POST", f"{base}/v1/traces", body, PROTO | {"Content-Type": "application/json"})
            assert status == 429 and headers["Retry-After"] == "7"
            assert json.loads(payload)["code"] == 8  # RESOURCE_EXHAUSTED
            t.join(30)
            status, headers, payload = first["answer"]  # type: ignore[misc]
            assert status == 503 and headers["Retry-After"] == "7"
            assert json.loads(payload)["code"] == 14  # UNAVAILABLE
            locker.rollback()
            assert store.count_events() == 0, "nothing partial stored"
            status, _, payload = http("POST", f"{base}/v1/traces", body, JSON)
            assert status == 200 and store.count_events() == 7
    finally:
        locker.close()
        store.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
