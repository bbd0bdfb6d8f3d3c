"""``GET /api/v1/runs`` (filtered, paginated) and ``GET /api/v1/runs/<run_id>`` (the trace)."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from hypermindlabs.web.params import parse_runs_query
from hypermindlabs.web.responses import error_response, json_response, limits, store

bp = Blueprint("api_runs", __name__, url_prefix="/api/v1")


@bp.get("/runs")
def list_runs() -> Response:
    filters, limit, cursor = parse_runs_query(request.args.to_dict(flat=False), now_ns=g.now_ns, limits=limits())
    page = store().list_runs(filters, limit=limit, cursor=cursor)
    return json_response({"runs": page.runs, "next_cursor": page.next_cursor, "filters": filters.to_query()})


@bp.get("/runs/<path:run_id>")
def get_run(run_id: str) -> Response:
    trace = store().get_run(run_id)
    if trace is None:
        return error_response(404, f"no run {run_id!r}", "run_id")
    return json_response(trace)
