"""The database is unavailable or locked: answer 503 with ``Retry-After``, never 500, and recover alone.

A stopped or unreachable PostgreSQL, a network cut, or a SQLite file locked by another process past
the busy timeout all surface as SQLAlchemy's ``OperationalError``/``InterfaceError`` (or the pool's
``TimeoutError`` when every connection is stuck). Those are transient for the caller: the batch was
not stored (the append is one transaction, so nothing partial is), and the same batch may be sent
again — ingestion is idempotent by ``event_id``, so a retry after an answer that was lost in transit
stores nothing twice. Recovery needs no restart: PostgreSQL connections are pre-pinged by the pool
(store/dialect.py), so the first request after the database returns gets a fresh connection; SQLite
reopens per checkout.

``/healthz`` reports the database's state: 503 ``{"status": "error", "error": …, "field":
"database"}`` when a connection cannot be made, and ``"degraded"`` (200, with the reason) when reads
work but the write lock cannot be taken — a SQLite file locked by another process.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hypermindlabs.config import Settings
from hypermindlabs.web.responses import error_response, json_response

__all__ = ["UNAVAILABLE", "init_app", "reason_of"]

log = logging.getLogger(__name__)

#: The exceptions that mean "the database cannot serve this now" rather than "this request is wrong".
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


def reason_of(exc: BaseException) -> str:
    """The driver's first line, without SQL or parameters (which may hold client data)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return (text[0] if text else type(orig).__name__)[:200]


def init_app(app: Flask, settings: Settings) -> None:
    retry_after = str(settings.db_retry_after_s)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def _unavailable(exc: Exception) -> Response:
        reason = reason_of(exc)
        log.warning("database unavailable on %s %s: %s", request.method, request.path, reason)
        resp = error_response(503, f"database unavailable, retry later: {reason}", "database")
        resp.headers["Retry-After"] = retry_after
        return resp

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            ok = app.extensions["hypermind.store"].ping()
        except Exception as exc:  # noqa: BLE001 - liveness reports any storage failure as 503
            body = {"status": "error", "error": f"database unavailable: {reason_of(exc)}", "field": "database"}
            resp = json_response(body, 503)
            resp.headers["Retry-After"] = retry_after
            return resp
        if not ok:
            return json_response({"status": "error", "error": "database answered the ping wrongly"}, 503)
        blocked = app.extensions["hypermind.store"].write_blocked()
        if blocked is not None:
            body = {"status": "degraded", "error": f"reads work, writes are refused: {blocked}", "field": "database"}
            return json_response(body)
        return json_response({"status": "ok"})
