"""``GET /api/v1/runs`` (filtered, paginated) and ``GET /api/v1/runs/<run_id>`` (the trace)."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from hypermindlabs.core.filters import QueryError, parse_filters
from hypermindlabs.web.responses import error_response, json_response, store

bp = Blueprint("api_runs", __name__, url_prefix="/api/v1")


@bp.errorhandler(QueryError)
def _query_error(exc: QueryError) -> Response:
    return error_response(400, exc.reason, exc.field)


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    try:
        value = int(raw)
    except ValueError as exc:
        raise QueryError("limit", "must be an integer") from exc
    if not 1 <= value <= 1000:
        raise QueryError("limit", "must be between 1 and 1000")
    return value


@bp.get("/runs")
def list_runs() -> Response:
    args = request.args.to_dict(flat=False)
    limit = _limit(args.pop("limit", [None])[-1])
    cursor = args.pop("cursor", [None])[-1]
    filters = parse_filters(args, now_ns=g.now_ns)
    page = store().list_runs(filters, limit=limit, cursor=cursor)
    return json_response({"runs": page.runs, "next_cursor": page.next_cursor, "filters": filters.to_query()})


@bp.get("/runs/<path:run_id>")
def get_run(run_id: str) -> Response:
    trace = store().get_run(run_id)
    if trace is None:
        return error_response(404, f"no run {run_id!r}", "run_id")
    return json_response(trace)
