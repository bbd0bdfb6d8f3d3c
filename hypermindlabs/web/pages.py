"""HTML pages of the web UI: the dashboard, the run list, a run's trace, a failure cluster.

The pages are static shells rendered by Jinja (which escapes everything it prints); the data is
fetched by the page's own scripts from the JSON API and written into the DOM as text. Every page
answer carries a Content-Security-Policy allowing only this origin's scripts and styles (no inline
script or style), so even a rendering bug cannot run injected markup. Grafana panels are framed
only when ``Settings.grafana_url`` is set, and then the CSP allows frames from that origin only.

With tokens configured the API answers 401 without ``Authorization: Bearer``; the pages stay open
(they hold no data) and, told so by ``<body data-auth="token">``, ask for a read token, keep it in
the tab's ``sessionStorage`` and send it as that header on every API call (common.js), never in a
URL.

Chart code (uPlot) is served from ``node_modules`` (installed by ``make bootstrap`` from
``package.json``), never from a CDN and never copied into the repository.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import orjson
from flask import Blueprint, Response, abort, current_app, redirect, render_template, send_from_directory, url_for

from hypermindlabs import conventions
from hypermindlabs.web.responses import settings

bp = Blueprint("pages", __name__)

# Files the pages may load from node_modules: (package, file) → content type. Nothing else is served.
_VENDOR_FILES: dict[tuple[str, str], str] = {
    ("uplot", "uPlot.iife.min.js"): "text/javascript",
    ("uplot", "uPlot.min.css"): "text/css",
}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def grafana_origin(url: str | None) -> str | None:
    """The scheme://host[:port] of the Grafana URL, or None when unset or not http(s)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(grafana_url: str | None) -> str:
    """Only this origin's scripts, styles, images and API; frames only from Grafana when configured."""
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
    origin = grafana_origin(grafana_url)
    if origin:
        directives.append(f"frame-src {origin}")
    return "; ".join(directives)


@bp.after_request
def _security_headers(resp: Response) -> Response:
    if resp.mimetype == "text/html":
        resp.headers["Content-Security-Policy"] = content_security_policy(settings().grafana_url)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
    return resp


def _auth_required() -> bool:
    """Whether the API wants a bearer token (any token configured): the pages then ask for one."""
    scopes = current_app.extensions.get("hypermind.scopes")
    return bool(scopes is not None and scopes.enabled)


def _page(template: str, **context: object) -> Response:
    html = render_template(template, auth_required=_auth_required(), **context)
    return Response(html, mimetype="text/html")


@bp.get("/")
def index() -> Response:
    return redirect(url_for("pages.observability"))  # type: ignore[return-value]


@bp.get("/observability")
def observability() -> Response:
    grafana = None
    base = settings().grafana_url
    if grafana_origin(base):
        panels = [{"uid": uid, "id": pid, "title": title} for uid, pid, title in conventions.GRAFANA_EMBED_PANELS]
        grafana = {"url": base.rstrip("/"), "panels": orjson.dumps(panels).decode()}  # type: ignore[union-attr]
    return _page("observability-dashboard.html", grafana=grafana)


@bp.get("/runs")
def runs() -> Response:
    return _page("runs.html")


@bp.get("/runs/<path:run_id>")
def run(run_id: str) -> Response:
    return _page("run.html", run_id=run_id)


@bp.get("/failures/clusters/<cluster_id>")
def cluster(cluster_id: str) -> Response:
    return _page("cluster.html", cluster_id=cluster_id)


@bp.get("/vendor/<package>/<path:filename>")
def vendor(package: str, filename: str) -> Response:
    mimetype = _VENDOR_FILES.get((package, filename))
    if mimetype is None:
        abort(404)
    folder = _repo_root() / "node_modules" / package / "dist"
    resp = send_from_directory(folder, filename, mimetype=mimetype, max_age=3600)
    return resp
