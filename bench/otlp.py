"""OTLP ingest throughput: spans/s over POST /v1/traces (protobuf, as the SDK exporter sends it) next to
POST /api/v1/events carrying the very events those spans map to, on one server build, in the same run.

The spans are made by the OpenTelemetry SDK (agent runs: invoke_agent → chat, execute_tool,
retrieval, chat, one unmapped span) and encoded by the SDK's own OTLP encoder in exports of 512
spans (the BatchSpanProcessor default). The JSON baseline posts the mapped events in batches of the
same size, so the ratio is the cost of OTLP decoding, mapping and the trace state, on a shared,
noisy machine where absolute figures do not hold.

    .venv/bin/python bench/otlp.py                      # SQLite, 20k spans
    .venv/bin/python bench/otlp.py --spans 60000 --postgres postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import gzip
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from databases import fresh_url  # noqa: E402  (bench/databases.py)

from hypermindlabs.ingest.otlp_decode import decode_request
from hypermindlabs.ingest.otlp_mapping import AttributeKeys, map_spans  # noqa: E402

BATCH = 512
SPANS_PER_RUN = 6


def make_spans(n: int) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent", "service.version": "1.0.0"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tr = provider.get_tracer("bench")
    for i in range(max(1, n // SPANS_PER_RUN)):
        with tr.start_as_current_span("invoke_agent support", attributes={"gen_ai.operation.name": "invoke_agent",
                                      "hypermind.scenario": f"s{i % 7}"}):  # fmt: skip
            with tr.start_as_current_span("chat gpt-4o-mini", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 800 + i % 50,
                "gen_ai.usage.output_tokens": 90}):  # fmt: skip
                pass
            with tr.start_as_current_span("execute_tool web_search", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search"}) as s:  # fmt: skip
                if i % 10 == 0:
                    s.set_status(Status(StatusCode.ERROR, "web_search timed out after 30s"))
                    s.set_attribute("error.type", "TimeoutError")
            with tr.start_as_current_span("retrieval kb", attributes={"gen_ai.operation.name": "retrieval"}):
                pass
            with tr.start_as_current_span("chat gpt-4o-mini", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 40}):  # fmt: skip
                pass
            with tr.start_as_current_span("format answer"):
                pass
    provider.shutdown()
    # Whole traces per export (spans end children-first; a trace's spans are adjacent).
    return list(exporter.get_finished_spans())


def start_server(url: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("hypermind-obs")
    proc = subprocess.Popen([str(exe), "serve", "--database-url", url, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            requests.get(f"{base}/healthz", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    return proc, base


def post_all(url: str, path: str, bodies: list[bytes], headers: dict[str, str]) -> float:
    proc, base = start_server(url)
    try:
        session = requests.Session()
        t = time.perf_counter()
        for body in bodies:
            r = session.post(f"{base}{path}", data=body, headers=headers, timeout=300)
            r.raise_for_status()
            if path == "/v1/traces" and r.content not in (b"", b"{}"):
                raise SystemExit(f"export partially rejected: {r.content[:300]!r}")
        took = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(10)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is printed")
    ap.add_argument("--postgres", metavar="URL", help="also measure on this PostgreSQL database")
    args = ap.parse_args()

    spans = make_spans(args.spans)
    n = len(spans)
    protobufs = [encode_spans(spans[i : i + BATCH]).SerializeToString() for i in range(0, n, BATCH)]
    gzipped = [gzip.compress(b) for b in protobufs]
    # The JSON baseline: exactly the events those exports map to (as if the whole trace were known).
    records = [r for b in protobufs for r in decode_request(b, "application/x-protobuf")]
    mapped = map_spans(records, {}, AttributeKeys())
    objs = [o for m in mapped.mapped for o in m.objects]
    json_bodies = [orjson.dumps(objs[i : i + BATCH]) for i in range(0, len(objs), BATCH)]
    folded = n - len(mapped.mapped) - len(mapped.rejected)
    print(f"{n} SDK spans ({n // SPANS_PER_RUN} agent runs) → {len(objs)} events (+{folded} spans kept as run "
          f"attributes), exports of {BATCH} spans, median of {args.repeat}; rates are spans' worth per second")  # fmt: skip
    proto = {"Content-Type": "application/x-protobuf"}
    cases = [
        ("POST /api/v1/events (JSON, the mapped events)", "/api/v1/events", json_bodies, {"Content-Type": "application/json"}),
        ("POST /v1/traces (OTLP protobuf)", "/v1/traces", protobufs, proto),
        ("POST /v1/traces (OTLP protobuf, gzip)", "/v1/traces", gzipped, {**proto, "Content-Encoding": "gzip"}),
    ]
    backends = ["sqlite"] + (["postgres"] if args.postgres else [])
    with tempfile.TemporaryDirectory() as d:
        for backend in backends:
            took: dict[str, list[float]] = {label: [] for label, *_ in cases}
            for _ in range(args.repeat):
                for label, path, bodies, headers in cases:
                    url, drop = fresh_url(backend, Path(d), args.postgres)
                    try:
                        took[label].append(post_all(url, path, bodies, headers))
                    finally:
                        drop()
            base = n / statistics.median(took[cases[0][0]])
            print(f"\n[{backend}]")
            for label, *_ in cases:
                rate = n / statistics.median(took[label])
                print(f"  {label:<48} {rate:>9,.0f} spans/s   {rate / base:.2f}")


if __name__ == "__main__":
    main()
