"""GET /metrics: formats by Accept, exact exposition, lint-clean, counts equal the store, exemplars."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.metrics._internal.exemplar import Exemplar as OtelExemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import generate_latest
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from sqlalchemy import text

from hypermindlabs import conventions as c
from hypermindlabs.config import Settings
from hypermindlabs.export.exposition import build_registry, exemplar_labels
from hypermindlabs.store import EventStore
from hypermindlabs.web import create_app
from tests.conftest import FIXED_NOW_NS, open_pipeline, require_binary

T0 = FIXED_NOW_NS - 3600 * 10**9
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
MODELS = ("gpt-4o", "claude-3-5-sonnet", 'we"ird\\ model\nname ünï')


def dataset(n_runs: int = 30, *, run_id_len: int = 0) -> list[dict[str, Any]]:
    """Runs with a chat, a tool call (every 5th fails), a policy check every 4th run."""
    evs: list[dict[str, Any]] = []
    for i in range(n_runs):
        rid = f"run-{i:03d}".ljust(run_id_len, "x")
        failed = i % 5 == 0
        t = T0 + i * 10**9
        evs.append({"run_id": rid, "kind": "llm", "start_time": t, "duration_ms": 300 + i,
                    "usage": {"input_tokens": 100 + i, "output_tokens": 10}})  # fmt: skip
        tool = {"run_id": rid, "kind": "tool", "tool": ("crm", "search")[i % 2], "start_time": t + 10**6,
                "duration_ms": 40, "status": "error" if failed else "ok"}  # fmt: skip
        if failed:
            tool["error"] = {"type": "ReadTimeout", "message": f"Read timed out after {i} s"}
        evs.append(tool)
        if i % 4 == 0:
            evs.append(
                {
                    "run_id": rid,
                    "kind": "policy",
                    "name": "pii",
                    "start_time": t + 2 * 10**6,
                    "duration_ms": 1,
                }
            )
        evs.append({"run_id": rid, "kind": "run", "name": "answer", "start_time": t,
                    "duration_ms": 1000 + 10 * i, "status": "error" if failed else "ok", "project": "support",
                    "scenario": ("refund", "billing")[i % 2], "model": MODELS[i % 3],
                    "usage": {"input_tokens": 100 + i, "output_tokens": 10}})  # fmt: skip
    return evs


def post(client, events) -> dict[str, Any]:
    r = client.post("/api/v1/events", data=orjson.dumps(events), content_type="application/json")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def scrape(client, accept: str | None = None) -> tuple[str, str]:
    r = client.get("/metrics", headers={"Accept": accept} if accept else {})
    assert r.status_code == 200
    return r.headers["Content-Type"], r.get_data(as_text=True)


def samples(body: str, openmetrics: bool = False) -> list[Any]:
    families = parse_openmetrics(body) if openmetrics else parse_text(body)
    return [s for f in families for s in f.samples]


def total(body: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples(body)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


# -- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept, content_type",
    [
        (None, "text/plain; version=0.0.4; charset=utf-8"),
        ("text/plain", "text/plain; version=0.0.4; charset=utf-8"),
        (PROMETHEUS_ACCEPT, OPENMETRICS + "; escaping=underscores"),
        ("application/openmetrics-text", OPENMETRICS),
    ],
    ids=["no Accept gets the classic text format", "text/plain gets the classic text format",
         "Prometheus's own Accept gets OpenMetrics", "a bare OpenMetrics Accept gets OpenMetrics"],
)  # fmt: skip
def test_the_format_follows_the_scrapers_accept_header(client, accept, content_type):
    got, body = scrape(client, accept)
    assert got == content_type
    assert body.endswith("# EOF\n") == content_type.startswith("application/openmetrics-text")


class FixedSource:
    """Hand-built OTel data: the exposition is a pure function of it, so bytes can be compared."""

    def collect(self) -> MetricsData:
        scope = InstrumentationScope(c.METER_NAME)
        hist = HistogramDataPoint(
            attributes={c.ATTR_OPERATION: "chat", c.ATTR_REQUEST_MODEL: 'gpt "4o"'},
            start_time_unix_nano=0, time_unix_nano=0, count=3, sum=1.5, bucket_counts=[1, 2, 0],
            explicit_bounds=[0.32, 0.64], min=0.1, max=0.6,
            exemplars=[OtelExemplar({c.ATTR_RUN_ID: "run_7"}, 0.5, 1_767_225_600_250_000_000,
                                    span_id=0xB7AD6B7169203331, trace_id=0x0AF7651916CD43DD8448EB211C80319C)],
        )  # fmt: skip
        runs = NumberDataPoint(attributes={c.ATTR_STATUS: "ok", c.ATTR_MODEL: "a\nb"}, start_time_unix_nano=0,
                               time_unix_nano=0, value=4)  # fmt: skip
        metrics = [
            Metric(c.AGENT_RUNS.name, "", "{run}", Sum([runs], AggregationTemporality.CUMULATIVE, True)),
            Metric(c.OPERATION_DURATION.name, "", "s", Histogram([hist], AggregationTemporality.CUMULATIVE)),
        ]
        return MetricsData([ResourceMetrics(Resource({}), [ScopeMetrics(scope, metrics, "")], "")])


CLASSIC = f"""\
# HELP gen_ai_client_operation_duration_seconds {c.OPERATION_DURATION.description}
# TYPE gen_ai_client_operation_duration_seconds histogram
gen_ai_client_operation_duration_seconds_bucket{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\"",le="0.32"}} 1.0
gen_ai_client_operation_duration_seconds_bucket{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\"",le="0.64"}} 3.0
gen_ai_client_operation_duration_seconds_bucket{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\"",le="+Inf"}} 3.0
gen_ai_client_operation_duration_seconds_count{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\""}} 3.0
gen_ai_client_operation_duration_seconds_sum{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\""}} 1.5
# HELP hypermind_agent_runs_total {c.AGENT_RUNS.description}
# TYPE hypermind_agent_runs_total counter
hypermind_agent_runs_total{{model="a\\nb",status="ok"}} 4.0
"""  # noqa: E501

OPENMETRICS_BODY = f"""\
# HELP gen_ai_client_operation_duration_seconds {c.OPERATION_DURATION.description}
# TYPE gen_ai_client_operation_duration_seconds histogram
# UNIT gen_ai_client_operation_duration_seconds seconds
gen_ai_client_operation_duration_seconds_bucket{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\"",le="0.32"}} 1.0
gen_ai_client_operation_duration_seconds_bucket{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\"",le="0.64"}} 3.0 # {{run_id="run_7",trace_id="0af7651916cd43dd8448eb211c80319c"}} 0.5 1767225600.250000000
gen_ai_client_operation_duration_seconds_bucket{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\"",le="+Inf"}} 3.0
gen_ai_client_operation_duration_seconds_count{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\""}} 3.0
gen_ai_client_operation_duration_seconds_sum{{gen_ai_operation_name="chat",gen_ai_request_model="gpt \\"4o\\""}} 1.5
# HELP hypermind_agent_runs {c.AGENT_RUNS.description}
# TYPE hypermind_agent_runs counter
hypermind_agent_runs_total{{model="a\\nb",status="ok"}} 4.0
# EOF
"""  # noqa: E501


def test_the_exposition_is_exactly_the_expected_bytes_in_both_formats():
    registry = build_registry(FixedSource())
    assert generate_latest(registry).decode() == CLASSIC
    assert om_exposition.generate_latest(registry).decode() == OPENMETRICS_BODY
    # Exemplars are kept between scrapes: a second Prometheus (or a retry) sees them too.
    assert om_exposition.generate_latest(registry).decode() == OPENMETRICS_BODY


def test_promtool_finds_the_classic_exposition_clean(client):
    promtool = require_binary("promtool")
    post(client, dataset())
    _, body = scrape(client)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_openmetrics_exposition_parses_strictly_and_lints_clean_as_text(client):
    # promtool (2.42) only parses the classic format: it stops at the first exemplar. So the
    # OpenMetrics body goes through the strict OpenMetrics parser, its families are linted by
    # promtool through the classic rendering of the same registry, and a real Prometheus
    # ingests it below (test_a_real_prometheus_…).
    promtool = require_binary("promtool")
    post(client, dataset())
    _, om = scrape(client, OPENMETRICS)
    families = list(parse_openmetrics(om))
    assert {f.name for f in families} >= {spec.prom_family for spec in c.METRICS if spec is not c.FAILURES}
    _, classic = scrape(client)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=classic, capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# -- counts ------------------------------------------------------------------------------------


def stored_by_kind(store: EventStore) -> Counter[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, status, count(*) FROM events GROUP BY kind, status")).all()
    return Counter({(k, s): n for k, s, n in rows})


def test_counts_on_metrics_equal_the_events_stored_and_a_repost_changes_nothing(client, store):
    events = dataset()
    assert post(client, events)["accepted"] == len(events)
    first = scrape(client)[1]
    assert post(client, events) == {"accepted": 0, "duplicates": len(events), "rejected": []}
    second = scrape(client)[1]
    stored = stored_by_kind(store)
    for body in (first, second):
        assert total(body, c.PROM_AGENT_RUNS) == stored["run", "ok"] + stored["run", "error"] == 30
        assert total(body, c.PROM_AGENT_RUNS, status="error") == stored["run", "error"] == 6
        for kind, op in (("run", "invoke_agent"), ("llm", "chat"), ("tool", "execute_tool")):
            n = stored[kind, "ok"] + stored[kind, "error"]
            assert total(body, c.OPERATION_DURATION.prom_count, gen_ai_operation_name=op) == n
        assert total(body, c.PROM_TOOL_CALLS) == stored["tool", "ok"] + stored["tool", "error"]
        assert total(body, c.PROM_STEP_ERRORS, kind="tool") == stored["tool", "error"]
        assert total(body, c.PROM_POLICY_CHECKS) == stored["policy", "ok"]
        assert total(body, c.TOKEN_USAGE.prom_sum, gen_ai_token_type="input") == sum(
            100 + i for i in range(30)
        )
        assert total(body, c.PROM_AGENT_RUN_DURATION + "_sum") == pytest.approx(
            sum(1 + i / 100 for i in range(30))
        )
    assert second == first


def test_untrusted_label_values_round_trip_as_data_in_both_formats(client):
    post(client, dataset(3))
    for accept in (None, OPENMETRICS):
        _, body = scrape(client, accept)
        models = {
            s.labels.get("model") for s in samples(body, accept is not None) if s.name == c.PROM_AGENT_RUNS
        }
        assert models == {"gpt-4o", "claude-3-5-sonnet", 'we"ird\\ model\ufffdname ünï'}


def test_metrics_needs_the_bearer_token_when_one_is_configured(pipeline):
    app = create_app(Settings(database_url="unused", api_token="s3cret"), pipeline=pipeline)
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


# -- exemplars ---------------------------------------------------------------------------------


def exemplars(body: str, name: str) -> list[Any]:
    return [s.exemplar for s in samples(body, openmetrics=True) if s.name == name and s.exemplar is not None]


def test_openmetrics_histogram_buckets_carry_exemplars_with_run_id_and_trace_id_of_stored_runs(client, store):
    post(client, dataset())
    _, body = scrape(client, OPENMETRICS)
    found = exemplars(body, c.PROM_AGENT_RUN_DURATION_BUCKET)
    assert found
    for ex in found:
        run = store.get_run(ex.labels["run_id"])
        assert run is not None and ex.labels["trace_id"] == run["run"]["trace_id"]
    steps = exemplars(body, c.PROM_OPERATION_DURATION_BUCKET)
    assert {e.labels["trace_id"] for e in steps} <= {
        store.get_run(e.labels["run_id"])["run"]["trace_id"] for e in steps
    }
    assert exemplars(body, c.TOKEN_USAGE.prom_bucket)
    assert not any(s.exemplar for s in samples(body, True) if s.name == c.PROM_AGENT_RUNS)


def test_exemplar_label_sets_stay_within_128_characters_cutting_only_the_run_id(client, store):
    post(client, dataset(5, run_id_len=128))
    _, body = scrape(client, OPENMETRICS)
    found = exemplars(body, c.PROM_AGENT_RUN_DURATION_BUCKET)
    assert found
    for ex in found:
        size = sum(len(k) + len(v) for k, v in ex.labels.items())
        assert size <= c.EXEMPLAR_MAX_CHARS and len(ex.labels["trace_id"]) == 32
        assert any(r.startswith(ex.labels["run_id"]) for r in store.run_ids(_all_runs()))


def _all_runs():
    from hypermindlabs.core.filters import Filters

    return Filters()


@pytest.mark.parametrize(
    "run_id, trace_id, expected",
    [
        ("r1", "ab" * 16, {"run_id": "r1", "trace_id": "ab" * 16}),
        ("r" * 128, "ab" * 16, {"run_id": "r" * 82, "trace_id": "ab" * 16}),
        ("r" * 128, None, {"run_id": "r" * 114}),
        (None, "ab" * 16, {"trace_id": "ab" * 16}),
    ],
    ids=["short ids are kept whole", "a long run id is cut next to a full trace id",
         "without a trace id the run id gets the room", "without a run id only the trace id is shown"],
)  # fmt: skip
def test_exemplar_labels_fit_the_openmetrics_limit(run_id, trace_id, expected):
    labels = exemplar_labels(run_id, trace_id)
    assert labels == expected
    assert sum(len(k) + len(v) for k, v in labels.items()) <= c.EXEMPLAR_MAX_CHARS


# -- a real Prometheus -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - a local test server
        return json.loads(r.read())


@pytest.mark.prometheus
def test_a_real_prometheus_scrapes_openmetrics_with_exemplar_storage_and_agrees_on_counts(tmp_path):
    from werkzeug.serving import make_server

    prometheus = require_binary("prometheus")
    pipeline = open_pipeline(f"sqlite:///{tmp_path / 'events.db'}")
    store = pipeline.store
    app = create_app(Settings(database_url="unused"), pipeline=pipeline)
    post(app.test_client(), dataset())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: hypermind\n    static_configs: [{{targets: ['127.0.0.1:{server.server_port}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--enable-feature=exemplar-storage"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        runs = found = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                q = urllib.parse.quote(f"sum({c.PROM_AGENT_RUNS})")
                result = get_json(f"{base}/query?query={q}")["data"]["result"]
                now = time.time()
                ex_q = urllib.parse.quote(c.PROM_AGENT_RUN_DURATION_BUCKET)
                found = get_json(f"{base}/query_exemplars?query={ex_q}&start={T0 / 1e9 - 60}&end={now + 60}")[
                    "data"
                ]
            except (OSError, KeyError):
                continue
            if result and found:
                runs = float(result[0]["value"][1])
                break
        assert runs == 30, (tmp_path / "prometheus.log").read_text()[-2000:]
        up = get_json(f"{base}/query?query=up")["data"]["result"]
        assert [r["value"][1] for r in up] == ["1"]
        labels = [e["labels"] for series in found for e in series["exemplars"]]
        assert labels and all(
            store.get_run(lb["run_id"])["run"]["trace_id"] == lb["trace_id"] for lb in labels
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.shutdown()
        log.close()
