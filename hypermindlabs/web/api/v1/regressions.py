"""``GET /api/v1/regressions``: degraded slices against a baseline (docs/regressions.md).

The query, reads and answer are :mod:`hypermindlabs.web.regressions`; the statistics are
:mod:`hypermindlabs.regressions` (pure). Field errors become 400s through the app's one handler.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from hypermindlabs.web.responses import json_response, store

bp = Blueprint("api_regressions", __name__, url_prefix="/api/v1")


@bp.get("/regressions")
def get_regressions() -> Response:
    # Imported on first use: scipy and numpy cost about a second of start-up the other routes
    # (and every test app) need not pay.
    from hypermindlabs.web.regressions import parse_regressions_query, regressions

    q = parse_regressions_query(request.args.to_dict(flat=False), now_ns=g.now_ns)
    return json_response(regressions(store(), q))
