"""``GET /api/v1/failures/clusters``: failure clusters with counts, trends, hints and drill-down."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from hypermindlabs.core.filters import QueryError, parse_filters
from hypermindlabs.triage.report import ClusterQuery, cluster_report
from hypermindlabs.web.responses import error_response, json_response, store

bp = Blueprint("api_failures", __name__, url_prefix="/api/v1")
DAY_NS = 86_400 * 10**9


@bp.errorhandler(QueryError)
def _query_error(exc: QueryError) -> Response:
    return error_response(400, exc.reason, exc.field)


def _int(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise QueryError(name, "must be an integer") from exc
    if not lo <= value <= hi:
        raise QueryError(name, f"must be between {lo} and {hi}")
    return value


def cluster_query(args: dict[str, list[str]], now_ns: int) -> ClusterQuery:
    f = parse_filters(args, now_ns=now_ns, allowed_extra=("buckets", "samples"))
    to_ns = f.to_ns if f.to_ns is not None else now_ns
    from_ns = f.from_ns if f.from_ns is not None else to_ns - DAY_NS
    if to_ns <= from_ns:
        raise QueryError("from", "must be before to")
    return ClusterQuery(
        filters=f,
        from_ns=from_ns,
        to_ns=to_ns,
        buckets=_int(f.extra.get("buckets"), "buckets", 24, 1, 500),
        samples=_int(f.extra.get("samples"), "samples", 5, 0, 100),
    )


@bp.get("/failures/clusters")
def clusters() -> Response:
    q = cluster_query(request.args.to_dict(flat=False), g.now_ns)
    return json_response(cluster_report(store(), q))
