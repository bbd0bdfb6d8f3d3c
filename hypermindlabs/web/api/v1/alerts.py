"""``POST /api/v1/alerts`` (Alertmanager's webhook receiver) and ``GET /api/v1/alerts`` (what fires).

Shapes: CONTRACTS.md "Alerts" and docs/api.md. Protected by the API token like the rest of the API;
the generated alertmanager.yml sends it from a credentials file.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, request

from hypermindlabs import conventions as c
from hypermindlabs.core.alerts import STATES, AlertPayloadError, Severities, api_runs_url, parse_webhook
from hypermindlabs.core.events import format_timestamp
from hypermindlabs.store.alerts import AlertStore
from hypermindlabs.web.responses import error_response, json_response, store

bp = Blueprint("api_alerts", __name__, url_prefix="/api/v1")
_STATE_PARAMS = (*STATES, "all")
_SEVERITIES = Severities(label=c.LABEL_SEVERITY, known=c.SEVERITIES, default=c.SEVERITY_INFO)


def _alerts() -> AlertStore:
    ext = current_app.extensions
    if "hypermind.alert_store" not in ext:
        ext["hypermind.alert_store"] = store().alerts()
    return ext["hypermind.alert_store"]


@bp.post("/alerts")
def receive() -> Response:
    try:
        body = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        return error_response(400, f"body is not JSON: {exc}", "body")
    try:
        records = parse_webhook(body, _SEVERITIES)
    except AlertPayloadError as exc:
        return error_response(400, exc.reason, exc.field)
    return json_response({"stored": _alerts().upsert(records, received_at_ns=g.now_ns)})


def _row(r: dict[str, Any]) -> dict[str, Any]:
    annotations = orjson.loads(r["annotations"])
    return {
        "fingerprint": r["fingerprint"],
        "status": r["status"],
        "alertname": r["alertname"],
        "severity": r["severity"],
        "labels": orjson.loads(r["labels"]),
        "annotations": annotations,
        "starts_at": format_timestamp(r["starts_at_ns"]),
        "ends_at": format_timestamp(r["ends_at_ns"]) if r["ends_at_ns"] is not None else None,
        "generator_url": r["generator_url"],
        "runs_url": api_runs_url(annotations.get(c.ANNOTATION_RUNS_URL)),
        "receiver": r["receiver"],
        "received_at": format_timestamp(r["received_at_ns"]),
    }


@bp.get("/alerts")
def list_alerts() -> Response:
    unknown = sorted(set(request.args) - {"state", "limit"})
    if unknown:
        return error_response(400, "unknown parameter; allowed: state, limit", unknown[0])
    state = request.args.get("state", "firing")
    if state not in _STATE_PARAMS:
        return error_response(400, f"must be one of {', '.join(_STATE_PARAMS)}", "state")
    raw_limit = request.args.get("limit", "500")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 5000:
        return error_response(400, "must be an integer between 1 and 5000", "limit")
    return json_response({"alerts": [_row(r) for r in _alerts().list(state, limit=int(raw_limit))]})
