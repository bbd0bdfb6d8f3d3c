"""``GET /api/v1/failures/clusters``: failure clusters with counts, trends, hints and drill-down.

``GET /api/v1/failures/runs/<run_id>``: the triage of one run's failed events — class, cluster,
label and remediation hint per failed event — so the trace page shows the hint beside every failing step.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from hypermindlabs.triage.classify import classify_failure
from hypermindlabs.triage.report import cluster_report
from hypermindlabs.web.params import parse_cluster_query
from hypermindlabs.web.responses import error_response, json_response, limits, store

bp = Blueprint("api_failures", __name__, url_prefix="/api/v1")


@bp.get("/failures/clusters")
def clusters() -> Response:
    q = parse_cluster_query(request.args.to_dict(flat=False), now_ns=g.now_ns, limits=limits())
    return json_response(cluster_report(store(), q))


@bp.get("/failures/runs/<path:run_id>")
def run_failures(run_id: str) -> Response:
    trace = store().get_run(run_id)
    if trace is None:
        return error_response(404, f"no run {run_id!r}", "run_id")
    failed = []
    for ev in trace["events"]:
        if ev["status"] != "error":
            continue
        err = ev.get("error") or {}
        f = classify_failure(
            kind=ev["kind"], error_type=err.get("type"), error_message=err.get("message"),
            error_class=err.get("class"), tool=ev.get("tool"), model=ev.get("model"),
        )  # fmt: skip
        failed.append({
            "event_id": ev["event_id"],
            "span_id": ev["span_id"],
            "kind": ev["kind"],
            "failure_class": ev.get("failure_class") or f.failure_class,
            "cluster_id": ev.get("cluster_id") or f.cluster_id,
            "label": f.label,
            "hint": f.hint,
        })  # fmt: skip
    return json_response({"run_id": run_id, "failed": failed})
