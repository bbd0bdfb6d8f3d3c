"""examples/otlp_agent/agent.py, run as a user would, against a real server: its runs arrive whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from tests.otlp_support import get_json, serve

AGENT = Path(__file__).resolve().parents[1] / "examples" / "otlp_agent" / "agent.py"


def test_the_worked_example_agent_exports_its_runs_with_steps_tokens_and_tool_failures(pipeline, store):
    app = create_app(Settings(database_url="unused", api_token="tok"), pipeline=pipeline)
    with serve(app) as base:
        done = subprocess.run([sys.executable, str(AGENT), "--endpoint", f"{base}/v1/traces", "--token", "tok",
                               "--runs", "30", "--seed", "3"], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        runs = get_json(f"{base}/api/v1/runs?project=refund-agent&tag.release=1.4.2&from=now-1h&limit=100", "tok")
        runs = runs["runs"]
        assert len(runs) == 30
        assert {r["scenario"] for r in runs} == {"refund_request", "order_status"}
        failed = [r for r in runs if r["status"] == "error"]
        assert failed and all(r["error"]["type"] == "TimeoutError" for r in failed)
        steps = [e for r in runs for e in get_json(f"{base}/api/v1/runs/{r['run_id']}", "tok")["events"]]
        llm = [e for e in steps if e["kind"] == "llm"]
        assert len(llm) == sum(2 if r["status"] == "ok" else 1 for r in runs)
        assert all(e["model"] == "gpt-4o-mini" and e["usage"]["input_tokens"] > 0 for e in llm)
        summary = get_json(f"{base}/api/v1/metrics/summary?project=refund-agent&from=now-1h", "tok")["rows"][0]
        assert summary["tokens"]["input"] == sum(e["usage"]["input_tokens"] for e in llm)
        assert summary["runs"] == 30 and summary["errors"] == len(failed)
