"""The Flask application: JSON API, Prometheus endpoint and pages (``create_app`` factory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from hypermindlabs.config import Settings
from hypermindlabs.web.params import query_limits, register_error_handler
from hypermindlabs.web.responses import error_response
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
    app.extensions["hypermind.query_limits"] = query_limits(settings)

    from hypermindlabs.web import faults, guards, pages, scrape, security
    from hypermindlabs.web.api import otlp
    from hypermindlabs.web.api.v1 import dimensions, events, failures, metrics, regressions, runs

    scrape.init_app(app, pipeline.telemetry, pipeline.store.engine if pipeline.export is not None else None)

    app.register_blueprint(events.bp)
    app.register_blueprint(runs.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(failures.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(regressions.bp)
    app.register_blueprint(otlp.bp)  # POST /v1/traces, the OTLP/HTTP path
    app.register_blueprint(dimensions.bp)
    from hypermindlabs.web import docs
    from hypermindlabs.web.api.v1 import alerts, openapi

    app.register_blueprint(alerts.bp)
    app.register_blueprint(openapi.bp)  # GET /api/v1/openapi.json
    app.register_blueprint(docs.bp)
    register_error_handler(app)

    @app.before_request
    def _clock() -> None:
        g.now_ns = app.extensions["hypermind.clock"]()

    security.init_app(app, settings)  # tokens per scope, CORS when configured, headers on every answer
    faults.init_app(app, settings)  # database unavailable or locked → 503 + Retry-After; /healthz
    guards.init_app(app, settings)  # NUL in a path or parameter → 400; GET reads under the read deadline → 503
    from hypermindlabs.web import ratelimit

    ratelimit.init_app(app, settings)  # ingest and expensive reads: per token and per address → 429 + Retry-After

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if request.path.startswith(("/api/", "/v1/")) or request.path in ("/healthz", "/metrics"):
            field = "body" if exc.code == 413 else None
            return error_response(exc.code or 500, exc.description or exc.name, field)
        return exc

    return app


def _repo_root() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
