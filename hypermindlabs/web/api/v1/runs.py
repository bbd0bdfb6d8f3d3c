"""``GET /api/v1/runs`` (filtered, paginated) and ``GET /api/v1/runs/<run_id>`` (the trace).

After ``hypermind-obs prune`` both say when the window asked for reaches before the retention
watermark (``pruned_before``): the runs started before it are no longer stored one by one, while
the aggregates still count them, so an empty or short list there is not "no runs".
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from hypermindlabs.core.events import format_timestamp
from hypermindlabs.web.params import parse_runs_query
from hypermindlabs.web.responses import error_response, json_response, limits, store

bp = Blueprint("api_runs", __name__, url_prefix="/api/v1")


def _retention_notice(from_ns: int | None) -> dict[str, Any]:
    """``pruned_before`` and a notice when the window starts before the watermark; else nothing."""
    mark = store().retention_watermark()
    if mark is None or (from_ns is not None and from_ns >= mark.pruned_before_ns):
        return {}
    when = format_timestamp(mark.pruned_before_ns)
    return {
        "pruned_before": when,
        "retention_notice": f"raw events of runs started before {when} were pruned (retention): those runs are "
        "not listed one by one, but the aggregates (summary, timeseries, /metrics) still count them",
    }


@bp.get("/runs")
def list_runs() -> Response:
    filters, limit, cursor = parse_runs_query(request.args.to_dict(flat=False), now_ns=g.now_ns, limits=limits())
    page = store().list_runs(filters, limit=limit, cursor=cursor)
    return json_response({"runs": page.runs, "next_cursor": page.next_cursor, "filters": filters.to_query(),
                          **_retention_notice(filters.from_ns)})  # fmt: skip


@bp.get("/runs/<path:run_id>")
def get_run(run_id: str) -> Response:
    trace = store().get_run(run_id)
    if trace is None:
        notice = _retention_notice(None)
        if notice:
            body = {"error": f"no run {run_id!r}; {notice['retention_notice']}", "field": "run_id",
                    "pruned_before": notice["pruned_before"]}  # fmt: skip
            return json_response(body, 404)
        return error_response(404, f"no run {run_id!r}", "run_id")
    return json_response(trace)
