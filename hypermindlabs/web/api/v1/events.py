"""``POST /api/v1/events``: JSON array, single object or NDJSON; 200 / 207 / 400 (DESIGN §3)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from hypermindlabs.ingest import BodyError, collector_paused, ingest_objects, split_body
from hypermindlabs.web.responses import error_response, json_response, settings, store

bp = Blueprint("api_events", __name__, url_prefix="/api/v1")


@bp.post("/events")
def post_events() -> Response:
    body = request.get_data(cache=False)
    # Decoding the body allocates as much as the batch itself: the collector stays paused for both.
    with collector_paused():
        try:
            objs = split_body(body, request.content_type or "")
        except BodyError as exc:
            return error_response(400, str(exc), "body")
        limit = settings().max_batch_events
        if len(objs) > limit:
            return error_response(413, f"at most {limit} events per request; split the batch", "body")
        result = ingest_objects(store(), objs)
    payload = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": [r.to_dict() for r in result.rejected],
    }
    if not result.rejected:
        status = 200
    elif result.accepted or result.duplicates:
        status = 207
    else:
        status = 400
    return json_response(payload, status)
