"""Who may call what, and the headers every answer carries.

Three scopes, each a set of accepted bearer tokens (``Authorization: Bearer <token>``, scheme
case-insensitive, as RFC 6750 / RFC 9110 allow):

- **ingest** — the writers: ``POST /api/v1/events``, ``POST /v1/traces``, ``POST /api/v1/alerts``
  (Alertmanager's webhook). Accepts ``ingest_token``.
- **read** — every other ``/api/`` request (the dashboard's reads). Accepts ``read_token``.
- **metrics** — ``GET /metrics``. Accepts ``metrics_token`` (what Prometheus' ``authorization``
  config sends) and the read tokens.

``admin_token`` and the historical ``api_token`` are accepted in every scope. Authentication is on
as soon as any token is configured; a scope with none of its own then accepts only the admin/API
token (closed, never silently open). Tokens are compared in constant time: each candidate is
hashed to a fixed length first and every candidate is compared, so neither the length nor the
position of a match leaks through timing.

CORS is off unless ``Settings.cors_origins`` lists origins (flask-cors answers those, and only
those, on ``/api/``). Every answer gets ``X-Content-Type-Options: nosniff``, a ``Referrer-Policy``
and a Content-Security-Policy; pages set their own stricter-for-pages policy (web/pages.py), every
other answer gets ``default-src 'none'; frame-ancestors 'none'`` — JSON and metrics are never
rendered nor framed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import Flask, Response, request

from hypermindlabs.config import Settings, is_loopback_host
from hypermindlabs.web.responses import error_response

__all__ = ["Scopes", "init_app", "scope_of", "API_CSP"]

#: The policy of every non-page answer: nothing may load from it, nothing may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

_INGEST_ROUTES = frozenset({("POST", "/api/v1/events"), ("POST", "/v1/traces"), ("POST", "/api/v1/alerts")})


def scope_of(method: str, path: str) -> str | None:
    """The scope a request needs, or None for what is always open (pages, static files, /healthz)."""
    if (method, path.rstrip("/") or "/") in _INGEST_ROUTES:
        return "ingest"
    if path == "/metrics":
        return "metrics"
    if path.startswith(("/api/", "/v1/")):
        return "read"
    return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Scopes:
    """The accepted token digests per scope; ``enabled`` is False when no token is configured at all."""

    ingest: tuple[bytes, ...]
    read: tuple[bytes, ...]
    metrics: tuple[bytes, ...]
    enabled: bool

    @classmethod
    def from_settings(cls, s: Settings) -> Scopes:
        every = [t for t in (s.admin_token, s.api_token) if t]
        read = [*every, *([s.read_token] if s.read_token else [])]
        scopes = {
            "ingest": [*every, *([s.ingest_token] if s.ingest_token else [])],
            "read": read,
            "metrics": [*read, *([s.metrics_token] if s.metrics_token else [])],
        }
        enabled = any((s.admin_token, s.api_token, s.read_token, s.ingest_token, s.metrics_token))
        return cls(**{k: tuple(_digest(t) for t in v) for k, v in scopes.items()}, enabled=enabled)

    def allows(self, scope: str, authorization: str) -> bool:
        """Whether the ``Authorization`` header value carries a token accepted in ``scope``."""
        scheme, _, sent = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not sent.strip():
            return False
        got = _digest(sent.strip())
        ok = False
        for want in getattr(self, scope):
            ok |= hmac.compare_digest(got, want)  # no early exit: every candidate is compared
        return ok


def init_app(app: Flask, settings: Settings) -> None:
    """Install the token check, CORS (when configured) and the security headers on ``app``."""
    scopes = Scopes.from_settings(settings)
    app.extensions["hypermind.scopes"] = scopes

    @app.before_request
    def _authenticate() -> Response | None:
        if request.method == "OPTIONS":
            return None
        scope = scope_of(request.method, request.path)
        if not scopes.enabled:
            # The bind/token rule wherever the app is served (``hypermind-obs serve`` refuses such a
            # bind; ``web_ui:create_app`` under gunicorn or any other server is held to it here):
            # without any token the API, OTLP and /metrics answer loopback clients only.
            # No REMOTE_ADDR at all: an in-process WSGI call, not a network client.
            remote = request.remote_addr
            if scope is None or not remote or is_loopback_host(remote):
                return None
            return error_response(
                403, "no token is configured (HYPERMIND_API_TOKEN): this server answers loopback clients only",
                "Authorization",
            )
        if scope is None or scopes.allows(scope, request.headers.get("Authorization", "")):
            return None
        resp = error_response(
            401, f"missing or wrong bearer token for {scope} (Authorization: Bearer …)", "Authorization"
        )
        resp.headers["WWW-Authenticate"] = 'Bearer realm="hypermind-obs"'
        return resp

    origins = [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]
    if origins:
        from flask_cors import CORS

        CORS(
            app,
            resources={r"/api/*": {"origins": origins}},
            allow_headers=["Authorization", "Content-Type"],
            methods=["GET", "POST"],
        )

    @app.after_request
    def _headers(resp: Response) -> Response:
        h = resp.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Content-Security-Policy", API_CSP)  # pages set theirs first (blueprint hooks run first)
        return resp
