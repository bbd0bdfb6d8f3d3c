"""``GET /api/v1/failures/clusters``: failure clusters with counts, trends, hints and drill-down."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from hypermindlabs.triage.report import cluster_report
from hypermindlabs.web.params import parse_cluster_query
from hypermindlabs.web.responses import json_response, store

bp = Blueprint("api_failures", __name__, url_prefix="/api/v1")


@bp.get("/failures/clusters")
def clusters() -> Response:
    q = parse_cluster_query(request.args.to_dict(flat=False), now_ns=g.now_ns)
    return json_response(cluster_report(store(), q))
