"""``GET /api/v1/metrics/summary`` and ``GET /api/v1/metrics/timeseries``: numbers from rollups.

Parameters, row fields and the drill-down contract are in docs/api-metrics.md; the reading is
:mod:`hypermindlabs.rollups` (never a scan of raw events).
"""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from hypermindlabs.rollups.answers import summary, timeseries
from hypermindlabs.web.params import parse_metrics_query
from hypermindlabs.web.responses import json_response, limits, store

bp = Blueprint("api_metrics", __name__, url_prefix="/api/v1/metrics")


@bp.get("/summary")
def metrics_summary() -> Response:
    q = parse_metrics_query(request.args.to_dict(flat=False), now_ns=g.now_ns, timeseries=False, limits=limits())
    return json_response(summary(store(), q))


@bp.get("/timeseries")
def metrics_timeseries() -> Response:
    q = parse_metrics_query(request.args.to_dict(flat=False), now_ns=g.now_ns, timeseries=True, limits=limits())
    return json_response(timeseries(store(), q))
