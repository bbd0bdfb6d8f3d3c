"""JSON answers and the request-scoped handles (store, settings) the API modules share."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app

from hypermindlabs.config import Settings
from hypermindlabs.core.filters import QueryLimits
from hypermindlabs.store import EventStore

__all__ = ["json_response", "error_response", "store", "settings", "limits"]


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS), status=status, mimetype="application/json")


def error_response(status: int, error: str, field: str | None = None) -> Response:
    body: dict[str, Any] = {"error": error}
    if field is not None:
        body["field"] = field
    return json_response(body, status)


def store() -> EventStore:
    return current_app.extensions["hypermind.store"]


def settings() -> Settings:
    return current_app.extensions["hypermind.settings"]


def limits() -> QueryLimits:
    """The caps on one query, from the app's settings (see :func:`~hypermindlabs.web.params.query_limits`)."""
    return current_app.extensions["hypermind.query_limits"]
