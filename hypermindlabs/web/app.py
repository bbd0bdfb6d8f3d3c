"""The Flask application: JSON API, Prometheus endpoint and pages (``create_app`` factory)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from hypermindlabs.config import Settings
from hypermindlabs.web.params import register_error_handler
from hypermindlabs.web.responses import error_response, json_response
from hypermindlabs.wiring import Pipeline, build_pipeline

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    pipeline: Pipeline | None = None,
    clock: Callable[[], int] | None = None,
) -> Flask:
    """The app over ``pipeline`` (built from ``settings`` by the composition root when not given).

    It takes what it is given and changes none of it: the store's hooks, the telemetry behind
    ``/metrics`` and the clock (Unix ns; default the pipeline's) are the pipeline's.
    """
    settings = settings or Settings.from_env()
    if pipeline is None:
        pipeline = build_pipeline(settings)
    if pipeline.telemetry is None:
        raise ValueError("create_app: the pipeline exports nothing (built with export=False); /metrics needs it")
    app = Flask(__name__, root_path=str(_repo_root()), template_folder="templates", static_folder="static")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["hypermind.settings"] = settings
    app.extensions["hypermind.pipeline"] = pipeline
    app.extensions["hypermind.store"] = pipeline.store
    app.extensions["hypermind.clock"] = clock or pipeline.clock

    from hypermindlabs.web import pages, scrape
    from hypermindlabs.web.api import otlp
    from hypermindlabs.web.api.v1 import dimensions, events, failures, metrics, runs

    scrape.init_app(app, pipeline.telemetry)

    app.register_blueprint(events.bp)
    app.register_blueprint(runs.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(failures.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(otlp.bp)  # POST /v1/traces, the OTLP/HTTP path
    app.register_blueprint(dimensions.bp)
    from hypermindlabs.web import docs
    from hypermindlabs.web.api.v1 import alerts

    app.register_blueprint(alerts.bp)
    app.register_blueprint(docs.bp)
    register_error_handler(app)

    @app.before_request
    def _auth() -> Response | None:
        token = settings.api_token
        g.now_ns = app.extensions["hypermind.clock"]()
        if not token or request.path == "/healthz" or not _protected(request.path):
            return None
        sent = request.headers.get("Authorization", "")
        if not (sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), token.encode())):
            return error_response(401, "missing or wrong bearer token (Authorization: Bearer …)", "Authorization")
        return None

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if request.path.startswith(("/api/", "/v1/")) or request.path in ("/healthz", "/metrics"):
            field = "body" if exc.code == 413 else None
            return error_response(exc.code or 500, exc.description or exc.name, field)
        return exc

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            ok = app.extensions["hypermind.store"].ping()
        except Exception as exc:  # noqa: BLE001 - liveness reports any storage failure as 503
            return json_response({"status": "error", "error": str(exc)[:200]}, 503)
        return json_response({"status": "ok" if ok else "error"}, 200 if ok else 503)

    return app


def _protected(path: str) -> bool:
    return path.startswith(("/api/", "/v1/")) or path == "/metrics"


def _repo_root() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
