"""``GET /api/v1/dimensions``: the values the web UI's filter bar offers (project, model, tool, scenario, tags)."""

from __future__ import annotations

from flask import Blueprint, Response

from hypermindlabs.rollups.dimensions import dimension_values
from hypermindlabs.web.responses import json_response, store

bp = Blueprint("api_dimensions", __name__, url_prefix="/api/v1")


@bp.get("/dimensions")
def dimensions() -> Response:
    with store().engine.connect() as conn:
        return json_response(dimension_values(conn))
