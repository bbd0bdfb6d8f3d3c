"""Helpers shared by the OTLP tests: a real server on an ephemeral loopback port, raw posts."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask

DATA = Path(__file__).parent / "data" / "otlp"


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """The app on 127.0.0.1:<free port> in a thread; yields the base URL and shuts down after."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - a local test server
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = http("GET", url, headers=headers)
    assert status == 200, (status, body[:300])
    return json.loads(body)


def fixture(name: str) -> tuple[bytes, dict[str, Any]]:
    """An OTLP/JSON good fixture and what it must become."""
    body = (DATA / "good" / f"{name}.json").read_bytes()
    expected = json.loads((DATA / "good" / f"{name}.expected.json").read_text())
    return body, expected


GOOD = sorted(p.name[: -len(".json")] for p in (DATA / "good").glob("*.json") if not p.name.endswith(".expected.json"))
BAD = sorted(p.name for p in (DATA / "bad").iterdir())


# -- a stand-in for the model provider's HTTP API (OpenAI chat completions) ---------------------
USAGE_BY_MODEL = {"gpt-4o-mini": (812, 97), "gpt-4o": (1400, 210)}
RATE_LIMITED_MODEL = "gpt-rate-limited"


@contextmanager
def openai_stand_in() -> Iterator[str]:
    """A loopback server answering ``POST /v1/chat/completions`` as OpenAI does; yields its base URL.

    Token usage per model comes from USAGE_BY_MODEL, so tests know the exact counts to expect;
    RATE_LIMITED_MODEL gets OpenAI's 429 error body.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            model = req.get("model", "")
            if not self.path.endswith("/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            if model == RATE_LIMITED_MODEL:
                return self._send(429, {"error": {
                    "message": f"Rate limit reached for {model} in organization org-test on tokens per min (TPM): "
                               "Limit 30000, Used 30000, Requested 812. Please try again in 1.6s.",
                    "type": "tokens", "param": None, "code": "rate_limit_exceeded"}})  # fmt: skip
            prompt, completion = USAGE_BY_MODEL[model]
            self._send(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": 1767225600, "model": model,
                "system_fingerprint": "fp_test",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Your refund is approved."},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion},
            })  # fmt: skip

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        thread.join(5)
