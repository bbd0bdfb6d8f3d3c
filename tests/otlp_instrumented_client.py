"""Run by tests/test_otlp_instrumentations.py in its own process (instrumentors patch the openai
client globally): the official ``openai`` client, instrumented by one library, calls a local
stand-in of the chat completions API and exports its spans over OTLP/HTTP to hypermind-obs.

usage: python otlp_instrumented_client.py LIBRARY OTLP_TRACES_URL OPENAI_BASE_URL MODEL[,MODEL…]
prints one JSON line: {"trace_ids": [...], "errors": [...]}
"""

from __future__ import annotations

import json
import sys


def instrumentor(library: str):
    if library == "genai":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    elif library == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    elif library == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    else:
        raise SystemExit(f"unknown library {library}")
    return OpenAIInstrumentor()


def main() -> None:
    library, traces_url, base_url, models = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"chat-{library}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    trace.set_tracer_provider(provider)
    instrumentor(library).instrument(tracer_provider=provider)

    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    errors = []
    for model in models:
        try:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"Can I get a refund? ({model})"}]
            )
        except openai.APIStatusError as exc:
            errors.append([model, exc.status_code])
    provider.force_flush(10_000)
    provider.shutdown()
    print(json.dumps({"errors": errors}))


if __name__ == "__main__":
    main()
