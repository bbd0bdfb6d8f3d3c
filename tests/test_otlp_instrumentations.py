"""Real instrumentation libraries against a local stand-in for OpenAI's chat completions API, each
exporting OTLP/HTTP to a running hypermind-obs: the official ``openai`` client instrumented by
opentelemetry-instrumentation-openai-v2 (GenAI), openinference-instrumentation-openai
(OpenInference) and opentelemetry-instrumentation-openai (OpenLLMetry).

The three install together in the project's venv (pyproject's test extra); each runs in its own
process because an instrumentor patches the openai client globally.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hypermindlabs import conventions as c
from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from tests.otlp_support import RATE_LIMITED_MODEL, USAGE_BY_MODEL, get_json, http, openai_stand_in, serve
from tests.test_otlp_ingest import metric_total

CLIENT = Path(__file__).parent / "otlp_instrumented_client.py"
MODELS = ["gpt-4o-mini", "gpt-4o", RATE_LIMITED_MODEL]


@pytest.mark.parametrize("library", ["genai", "openinference", "openllmetry"])
def test_each_instrumented_openai_call_appears_as_an_llm_step_with_its_model_and_token_counts(pipeline, store, library):
    app = create_app(Settings(database_url="unused"), pipeline=pipeline)
    with serve(app) as base, openai_stand_in() as openai_url:
        done = subprocess.run(
            [sys.executable, str(CLIENT), library, f"{base}/v1/traces", openai_url, ",".join(MODELS)],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == {"errors": [[RATE_LIMITED_MODEL, 429]]}

        runs = get_json(f"{base}/api/v1/runs?from=now-1h&project=chat-{library}")["runs"]
        assert len(runs) == len(MODELS), "each call is its own trace, so its own run"
        steps = {}
        for run in runs:
            trace = get_json(f"{base}/api/v1/runs/{run['run_id']}")
            llm = [e for e in trace["events"] if e["kind"] == "llm"]
            assert len(llm) == 1 and len(trace["events"]) == 2
            steps[llm[0]["model"]] = llm[0]
            assert run["model"] == llm[0]["model"]
        assert sorted(steps) == sorted(MODELS)
        for model, (prompt, completion) in USAGE_BY_MODEL.items():
            s = steps[model]
            assert (s["usage"]["input_tokens"], s["usage"]["output_tokens"], s["status"]) == (prompt, completion, "ok")
            assert s["usage"]["estimated"] is False
            assert s["attributes"][c.ATTR_PROVIDER] == "openai"
        failed = steps[RATE_LIMITED_MODEL]
        assert failed["status"] == "error" and failed["error"]["type"] == "openai.RateLimitError"
        assert failed["failure_class"] == "rate_limit"

        summary = get_json(f"{base}/api/v1/metrics/summary?from=now-1h&project=chat-{library}")["rows"][0]
        assert summary["tokens"]["input"] == sum(p for p, _ in USAGE_BY_MODEL.values())
        assert summary["tokens"]["output"] == sum(o for _, o in USAGE_BY_MODEL.values())
        assert (summary["runs"], summary["errors"], summary["llm_calls"]) == (3, 1, 3)
        _, _, body = http("GET", f"{base}/metrics")
        for model, (prompt, _) in USAGE_BY_MODEL.items():
            assert metric_total(body.decode(), c.TOKEN_USAGE.prom_sum, gen_ai_token_type="input",
                                gen_ai_request_model=model) == prompt  # fmt: skip
