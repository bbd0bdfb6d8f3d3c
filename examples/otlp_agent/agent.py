"""A small support agent instrumented with the plain OpenTelemetry SDK and GenAI attributes, exporting
its traces over OTLP/HTTP to a running hypermind-obs. No hypermind code in the agent: only the
exporter's endpoint points at hypermind-obs.

    .venv/bin/hypermind-obs serve &                                   # http://127.0.0.1:8080
    .venv/bin/python examples/otlp_agent/agent.py --runs 20
    curl -s 'http://127.0.0.1:8080/api/v1/runs?project=refund-agent&from=now-1h'

The model and the CRM are simulated (deterministic with --seed) so it runs offline; swap
``call_model`` for a real client call and keep the span attributes.
"""

from __future__ import annotations

import argparse
import random
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

MODEL = "gpt-4o-mini"


def call_model(tracer: Tracer, rng: random.Random, prompt: str) -> str:
    # GenAI semantic conventions: operation, provider, model and token usage on a CLIENT span.
    with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as span:
        span.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
        })  # fmt: skip
        time.sleep(rng.uniform(0.005, 0.02))
        span.set_attributes({
            "gen_ai.response.model": MODEL, "gen_ai.usage.input_tokens": len(prompt) // 4 + rng.randint(200, 900),
            "gen_ai.usage.output_tokens": rng.randint(20, 200),
        })  # fmt: skip
        return "lookup_order" if "refund" in prompt else "answer"


def lookup_order(tracer: Tracer, rng: random.Random, order_id: str) -> dict:
    with tracer.start_as_current_span("execute_tool crm_lookup", kind=SpanKind.INTERNAL) as span:
        span.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "crm_lookup",
                             "gen_ai.tool.call.id": f"call_{order_id}"})  # fmt: skip
        time.sleep(rng.uniform(0.002, 0.01))
        if rng.random() < 0.15:
            exc = TimeoutError(f"crm_lookup timed out after 30s (order {order_id})")
            span.record_exception(exc)
            span.set_attribute("error.type", "TimeoutError")
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise exc
        return {"order_id": order_id, "refundable": True}


def run_agent(tracer: Tracer, rng: random.Random, n: int) -> None:
    scenario = "refund_request" if n % 3 else "order_status"
    with tracer.start_as_current_span("invoke_agent refund-agent", kind=SpanKind.INTERNAL) as span:
        span.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "refund-agent",
                             "gen_ai.conversation.id": f"conv-{n}", "hypermind.scenario": scenario})  # fmt: skip
        try:
            if call_model(tracer, rng, f"customer asks for a refund on order {n}") == "lookup_order":
                lookup_order(tracer, rng, str(1000 + n))
            call_model(tracer, rng, "write the answer")
        except TimeoutError as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default="http://127.0.0.1:8080/v1/traces", help="hypermind-obs OTLP/HTTP traces URL")
    ap.add_argument("--token", help="HYPERMIND_API_TOKEN of the server, if it has one")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    provider = TracerProvider(resource=Resource.create({
        "service.name": "refund-agent", "service.version": "1.4.2", "deployment.environment.name": "dev",
    }))  # fmt: skip
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=args.endpoint, headers=headers)))
    tracer = provider.get_tracer("refund_agent")
    rng = random.Random(args.seed)
    for n in range(args.runs):
        run_agent(tracer, rng, n)
    provider.shutdown()  # flushes the last export
    print(f"refund-agent: {args.runs} runs exported to {args.endpoint}")


if __name__ == "__main__":
    main()
