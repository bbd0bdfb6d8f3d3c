"""``GET /api/v1/dimensions``: the values the web UI's filter bar offers (project, model, tool, scenario, tags)."""

from __future__ import annotations

from flask import Blueprint, Response

from hypermindlabs.web.responses import json_response, store

bp = Blueprint("api_dimensions", __name__, url_prefix="/api/v1")


@bp.get("/dimensions")
def dimensions() -> Response:
    return json_response(store().dimension_values())
