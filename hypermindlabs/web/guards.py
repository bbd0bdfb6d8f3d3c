"""Input guards every request gets, whatever its endpoint (new ones included), and the read deadline.

- A NUL in the path or in any query parameter's name or value answers 400 naming it, before a
  view sees it: PostgreSQL cannot compare text holding NUL (it answered 500), SQLite can, and the
  two backends must answer alike.
- GET and HEAD requests read under one deadline, ``Settings.query_timeout_ms`` from the start of
  the request: the database cancels any statement past it and the answer is 503 (see
  :mod:`hypermindlabs.store.deadline`).

Tokens, CORS and the security headers are :mod:`hypermindlabs.web.security`'s; a database that is
unavailable is :mod:`hypermindlabs.web.faults`'.
"""

from __future__ import annotations

import logging
import sqlite3

from flask import Flask, Response, request

from hypermindlabs.config import Settings
from hypermindlabs.core.text import NUL
from hypermindlabs.store import ReadTimeout, begin_deadline, end_deadline, is_read_timeout
from hypermindlabs.web.responses import error_response

__all__ = ["init_app"]

log = logging.getLogger(__name__)


def init_app(app: Flask, settings: Settings) -> None:
    """Install the guards on ``app``."""
    budget_ms = settings.query_timeout_ms

    @app.before_request
    def _reject_nul() -> Response | None:
        if request.method in ("GET", "HEAD"):
            begin_deadline(budget_ms)
        if NUL in request.path:
            return error_response(400, "the path must not contain NUL (\\x00)", "path")
        for name, values in request.args.lists():
            if NUL in name or any(NUL in v for v in values):
                return error_response(400, "must not contain NUL (\\x00)", name)
        return None

    @app.teardown_request
    def _end_deadline(_exc: BaseException | None) -> None:
        end_deadline()

    @app.errorhandler(ReadTimeout)
    def _timeout(exc: ReadTimeout) -> Response:
        return error_response(503, str(exc))

    @app.errorhandler(sqlite3.OperationalError)
    def _sqlite_error(exc: sqlite3.OperationalError) -> Response:
        # Rows fetched straight from the driver's cursor surface SQLite's interrupt unwrapped.
        if is_read_timeout(exc):
            return error_response(503, str(ReadTimeout(budget_ms)))
        log.warning("database error on %s %s: %s", request.method, request.path, exc)
        resp = error_response(503, f"database unavailable, retry later: {str(exc)[:200]}", "database")
        resp.headers["Retry-After"] = str(settings.db_retry_after_s)
        return resp
