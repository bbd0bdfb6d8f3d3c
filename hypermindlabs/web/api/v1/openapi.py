"""``GET /api/v1/openapi.json``: the OpenAPI 3.0 description of every route, kept beside the code.

Written by hand from the views and ``web/params.py`` (the parameter names come from the shared
vocabulary, never retyped); ``tests/test_openapi.py`` fails when a route of the app's URL map is
missing here or a described path is not served, and schemathesis fuzzes the live app against it.
Answer bodies are described by their required top-level shape; every error is ``{"error", "field"}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from hypermindlabs.core.filters import DIMENSION_PARAMS, RUN_PARAMS
from hypermindlabs.core.vocabulary import PAGE_LIMIT_MAX
from hypermindlabs.web.responses import json_response

__all__ = ["bp", "document"]

bp = Blueprint("api_openapi", __name__, url_prefix="/api/v1")

_PRUNED = "RFC 3339; present when the window reaches before the retention watermark (hypermind-obs prune)"
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "field": {"type": "string", "nullable": True},
                   "pruned_before": {"type": "string", "description": _PRUNED}},
}


def _json(schema: dict[str, Any], description: str = "JSON") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _obj(*required: str) -> dict[str, Any]:
    return {"type": "object", "required": list(required)}


def _errors(*codes: int) -> dict[str, Any]:
    words = {400: "bad parameter or body (the field named)", 401: "missing or wrong bearer token",
             404: "not found", 413: "body or batch too large",
             429: "rate limit exceeded (the limit named; docs/operations.md), retry after Retry-After seconds",
             503: "database unavailable, retry after (Retry-After)"}  # fmt: skip
    out = {str(c): _json({"$ref": "#/components/schemas/Error"}, words[c]) for c in codes}
    for c in {429, 503} & set(codes):
        out[str(c)]["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return out


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}  # fmt: skip


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_FILTERS = [
    *[_q(p, f"comma-separated {p} values (any of)") for p in (*DIMENSION_PARAMS, *RUN_PARAMS)],
    _q("from", "window start: RFC 3339 or Unix seconds/ms/µs/ns or a duration before now (1h)"),
    _q("to", "window end (default now)"),
]
_LIMIT = _q("limit", f"page size, 1–{PAGE_LIMIT_MAX}", {"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT_MAX})
_TEXT = {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
_HTML = {"description": "page", "content": {"text/html": {"schema": {"type": "string"}}}}


def _get(summary: str, ok: dict[str, Any], params: list[dict[str, Any]] | None = None, *errors: int) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [], "responses": {"200": ok, **_errors(*errors)}}
    return {"get": op}


def _metrics_params(timeseries: bool) -> list[dict[str, Any]]:
    out = [*_FILTERS, _q("kind", "run, or step kinds (comma-separated)"),
           _q("group_by", "dimensions or tag.<key>, comma-separated"), _q("metrics", "measures, comma-separated"),
           _LIMIT]  # fmt: skip
    if timeseries:
        out.append(_q("step", "bucket width: seconds or 1m, 5m, 1h, 1d"))
    return out


def _event_body() -> dict[str, Any]:
    array = {"type": "array", "items": {"type": "object"}}
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"oneOf": [array, {"type": "object"}]}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (paths use OpenAPI's ``{name}`` templates for Flask's converters)."""
    read_errors = (400, 401, 503)
    limited = (400, 401, 429, 503)  # the expensive reads are rate limited (web/ratelimit.py)
    paths: dict[str, Any] = {
        "/api/v1/events": {
            "post": {
                "summary": "ingest run events (JSON array, object or NDJSON); idempotent by event_id",
                "requestBody": _event_body(),
                "responses": {
                    "200": _json(_obj("accepted", "duplicates", "rejected"), "all stored"),
                    "207": _json(_obj("accepted", "duplicates", "rejected"), "some rejected, the rest stored"),
                    **_errors(400, 401, 413, 429, 503),
                    "400": _json(
                        {"oneOf": [{"$ref": "#/components/schemas/Error"}, _obj("accepted", "rejected")]},
                        "body unreadable, or every event rejected (each with its field)",
                    ),
                },
            }
        },
        "/v1/traces": {
            "post": {
                "summary": "OTLP/HTTP spans (protobuf or JSON) → run events",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                        "application/json": {"schema": {"type": "object"}},
                    },
                },
                "responses": {
                    "200": {
                        "description": "ExportTraceServiceResponse",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "application/x-protobuf": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, 401, 413, 429, 503),
                },
            }
        },  # fmt: skip
        "/api/v1/runs": _get(
            "runs, newest first, keyset pages",
            _json({**_obj("runs"), "properties": {"pruned_before": {"type": "string", "description": _PRUNED},
                                                  "retention_notice": {"type": "string"}}}),
            [*_FILTERS, _LIMIT, _q("cursor", "next_cursor of the previous page")],
            *limited,
        ),  # fmt: skip
        "/api/v1/runs/{run_id}": _get("one run's trace", _json(_obj("run")), [_path("run_id")], 401, 404, 503),
        "/api/v1/metrics/summary": _get("rollup summary", _json(_obj("rows")), _metrics_params(False), *limited),
        "/api/v1/metrics/timeseries": _get(
            "rollup time series", _json(_obj("series")), _metrics_params(True), *limited
        ),  # fmt: skip
        "/api/v1/regressions": _get(
            "slices that regressed against a baseline, most impactful first (docs/regressions.md)",
            _json(_obj("findings", "tests", "params")),
            [
                *[f for f in _FILTERS if f["name"] not in RUN_PARAMS],
                _q("baseline_from", "baseline start (default 7 days before baseline_to)"),
                _q("baseline_to", "baseline end (default from)"),
                _q("baseline", "previous or same-hours", {"type": "string", "enum": ["previous", "same-hours"]}),
                _q("min_runs", "minimum runs of a slice in each window", {"type": "integer", "minimum": 1}),
                _q("alpha", "false-discovery rate", {"type": "number", "minimum": 1e-12, "maximum": 0.5}),
                _q("metrics", "comma-separated metrics"),
                _q("dimensions", "comma-separated project, model, tool, scenario, tag.<key>"),
                _q("limit", "findings, 1–1000", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
            *limited,
        ),  # fmt: skip
        "/api/v1/failures/clusters": _get(
            "failure clusters in the window",
            _json(_obj("clusters")),
            [
                *_FILTERS,
                _q("step", "trend step (15m, 1h, 1d…; default 1h up to 2-day windows, else 1d)"),
                _q("buckets", "legacy: that many equal trend buckets (only without step)", {"type": "integer"}),
                _q("samples", "sample runs per cluster", {"type": "integer"}),
                _q("limit", "clusters returned (1-1000, default 100)", {"type": "integer"}),
                _q("min_runs", "hide clusters with fewer failed + recovered runs (default 1)", {"type": "integer"}),
                _q("sort", "failed_runs (default), growth or newest",
                   {"type": "string", "enum": ["failed_runs", "growth", "newest"]}),
            ],
            *limited,
        ),  # fmt: skip
        "/api/v1/failures/runs/{run_id}": _get(
            "one run's failures", _json({"type": "object"}), [_path("run_id")], 401, 404, 503
        ),  # fmt: skip
        "/api/v1/dimensions": _get("values the filter bar offers", _json({"type": "object"}), [], 401, 503),
        "/api/v1/alerts": {
            "post": {
                "summary": "Alertmanager webhook receiver",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": _json(_obj("stored")), **_errors(400, 401, 503)},
            },
            **_get(
                "alerts received", _json(_obj("alerts")), [_q("state", "firing, resolved or all"), _LIMIT], *read_errors
            ),
        },  # fmt: skip
        "/api/v1/openapi.json": _get("this document", _json(_obj("openapi", "paths")), [], 401),
        "/metrics": _get("Prometheus scrape (OpenMetrics or text by Accept)", _TEXT, [], 401),
        "/healthz": {
            "get": {
                "summary": "liveness and the database's state",
                "parameters": [],
                "responses": {
                    "200": _json(_obj("status"), "ok, or degraded with the reason"),
                    "503": _json(_obj("status", "error"), "database unavailable"),
                },
            }
        },  # fmt: skip
        "/": _get("redirect to the dashboard", {"description": "redirect"}),
        "/observability": _get("dashboard page", _HTML),
        "/runs": _get("run list page", _HTML),
        "/runs/{run_id}": _get("trace page", _HTML, [_path("run_id")]),
        "/failures/clusters/{cluster_id}": _get("cluster page", _HTML, [_path("cluster_id")]),
        "/docs/{name}": _get("a docs page", _HTML, [_path("name")], 404),
        "/vendor/{package}/{filename}": _get(
            "chart code from node_modules", _TEXT, [_path("package"), _path("filename")], 404
        ),  # fmt: skip
        "/static/{filename}": _get("static files", _TEXT, [_path("filename")], 404),
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "hypermind-obs", "version": "1"},
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(document())
