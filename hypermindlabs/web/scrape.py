"""``GET /metrics``: the Prometheus scrape endpoint over :mod:`hypermindlabs.export.exposition`.

The format follows the scraper's ``Accept`` header (Prometheus asks for OpenMetrics first, with
exemplars; anything else gets the classic text format without them).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client.exposition import choose_encoder

from hypermindlabs.export.exposition import MetricsSource, build_registry
from hypermindlabs.export.render import view_registry

__all__ = ["bp", "init_app"]

bp = Blueprint("metrics_endpoint", __name__)

_REGISTRY_KEY = "hypermind.metrics_registry"


def init_app(app: Flask, telemetry: MetricsSource, engine: Any = None) -> None:
    """Serve ``/metrics`` of ``app`` (one registry per app): the store's exported-series view on
    ``engine`` (the product), else ``telemetry``'s in-process SDK metrics."""
    app.extensions["hypermind.telemetry"] = telemetry
    if engine is not None and not getattr(telemetry, "record_metrics", False):
        losses = getattr(telemetry, "losses", None)
        app.extensions[_REGISTRY_KEY] = view_registry(engine, losses.snapshot if losses is not None else None)
    else:
        app.extensions[_REGISTRY_KEY] = build_registry(telemetry)
    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics() -> Response:
    registry = current_app.extensions[_REGISTRY_KEY]
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(registry), status=200, headers={"Content-Type": content_type})
