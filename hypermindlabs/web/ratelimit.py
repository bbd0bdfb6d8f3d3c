"""Rate limits on ingestion and on the expensive reads, per bearer token and per client address.

flask-limiter counts the requests (fixed windows, so ``Retry-After`` is exact) in the storage
``Settings.rate_limit_storage`` names: ``memory://`` in one process, ``redis://…`` shared by every
worker of ``serve --workers N`` (with ``memory://`` each gunicorn worker would count on its own, so
N workers allow N times the limit). Two groups, each with one shared counter over its routes:

- **ingest** — ``POST /api/v1/events`` and ``POST /v1/traces``;
- **read** — the reads that scan rollups or events: ``GET /api/v1/runs``, ``/api/v1/metrics/summary``,
  ``/api/v1/metrics/timeseries``, ``/api/v1/regressions``, ``/api/v1/failures/clusters``.

Each group has a limit keyed by the bearer token (its SHA-256, never the token; a request without
one is keyed by its address) and one keyed by the client address (``REMOTE_ADDR``). Over either:
``429`` with ``Retry-After`` (whole seconds, at least 1) and ``{"error", "field": "rate_limit",
"limit", "scope", "per", "retry_after_s"}``; OTLP answers in its own encoding (``google.rpc.Status``,
RESOURCE_EXHAUSTED). The check runs after authentication: a refused token costs nobody's budget.
Pages, ``/metrics``, ``/healthz``, single-run reads and the Alertmanager webhook are not limited.

The limits apply when ``Settings.rate_limits_active()``: by default (``HYPERMIND_RATE_LIMITS=auto``)
whenever a token is set, that is whenever the app may be reachable from other hosts; a loopback-only
app without tokens (the demo, a developer's laptop) has none unless ``HYPERMIND_RATE_LIMITS=on``.

If the storage is unreachable (Redis down) requests are let through and the error is logged:
a rate-limit outage never refuses ingestion.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from flask import Flask, Response, request

from hypermindlabs.config import Settings, rate_limit_value
from hypermindlabs.web.responses import json_response

__all__ = ["init_app", "INGEST_ROUTES", "READ_ROUTES"]

INGEST_ROUTES = frozenset({("POST", "/api/v1/events"), ("POST", "/v1/traces")})
READ_ROUTES = frozenset(
    {
        ("GET", "/api/v1/runs"),
        ("GET", "/api/v1/metrics/summary"),
        ("GET", "/api/v1/metrics/timeseries"),
        ("GET", "/api/v1/regressions"),
        ("GET", "/api/v1/failures/clusters"),
    }
)
def _token_key() -> str:
    scheme, _, sent = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and sent.strip():
        return "token:" + hashlib.sha256(sent.strip().encode()).hexdigest()[:32]
    return "address:" + (request.remote_addr or "unknown")


def _address_key() -> str:
    return request.remote_addr or "unknown"


def init_app(app: Flask, settings: Settings) -> None:
    """Install the limits of ``settings`` on the routes of ``app`` (call after every blueprint)."""
    from flask_limiter import Limiter
    from flask_limiter.errors import RateLimitExceeded

    if not settings.rate_limits_active():
        return
    names = [f"rate_limit_{group}_per_{per}" for group in ("ingest", "read") for per in ("token", "address")]
    env = {f: f"HYPERMIND_{f.upper()}" for f in names}
    wanted = {f: rate_limit_value(getattr(settings, f), e) for f, e in env.items()}
    if not any(wanted.values()):
        return
    limiter = Limiter(
        _address_key,
        app=app,
        storage_uri=settings.rate_limit_storage,
        strategy="fixed-window",  # Retry-After is exact: the window's end resets the count
        key_prefix=settings.rate_limit_key_prefix,
        headers_enabled=False,  # Retry-After is set below, never 0
        swallow_errors=True,  # storage down → let requests through (logged), never refuse ingestion
    )
    app.extensions["hypermind.limiter"] = limiter

    groups = {"ingest": INGEST_ROUTES, "read": READ_ROUTES}
    for rule in app.url_map.iter_rules():
        for method in rule.methods or ():
            for group, routes in groups.items():
                if (method, rule.rule) not in routes:
                    continue
                view: Any = app.view_functions[rule.endpoint]
                for per, key in (("token", _token_key), ("address", _address_key)):
                    value = wanted[f"rate_limit_{group}_per_{per}"]
                    if value:
                        view = limiter.shared_limit(value, scope=f"{group}-{per}", key_func=key,
                                                    error_message=f"{group} per {per}")(view)  # fmt: skip
                app.view_functions[rule.endpoint] = view

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> Response:
        retry = 1
        current = limiter.current_limit
        if current is not None:
            try:
                retry = max(1, math.ceil(current.window[0] - time.time()))
            except Exception:  # noqa: BLE001 - storage gone between the hit and here: a second will do
                retry = 1
        group, _, per = str(exc.description).partition(" per ")
        limit = str(exc.limit.limit)
        message = f"rate limit exceeded: {limit} on {group} per {per}; retry after {retry} s"
        resp: Response
        if request.path == "/v1/traces":
            from hypermindlabs.web.api.otlp import otlp_status

            resp = otlp_status(429, message, request.content_type or "")
        else:
            body: dict[str, Any] = {"error": message, "field": "rate_limit", "limit": limit, "scope": group,
                                    "per": per, "retry_after_s": retry}  # fmt: skip
            resp = json_response(body, 429)
        resp.headers["Retry-After"] = str(retry)
        return resp
