"""HTML pages. The dashboard itself arrives with the web-UI work; until then ``/`` says what exists."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, url_for

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> Response:
    return redirect(url_for("pages.observability"))  # type: ignore[return-value]


@bp.get("/observability")
def observability() -> Response:
    html = """<!doctype html><html><head><meta charset="utf-8"><title>hypermind-obs</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto">
<h1>hypermind-obs</h1>
<p>The event store is running. Endpoints available now:</p>
<ul>
<li><a href="/api/v1/runs">/api/v1/runs</a> — runs, newest first (filters: project, model, tool, scenario, tag.&lt;key&gt;, from, to, status)</li>
<li>/api/v1/runs/&lt;run_id&gt; — one run and its trace</li>
<li>POST /api/v1/events — ingest run events</li>
<li><a href="/api/v1/metrics/summary?from=now-24h&amp;group_by=model">/api/v1/metrics/summary</a> and
<a href="/api/v1/metrics/timeseries?from=now-24h">/api/v1/metrics/timeseries</a> — p50/p95/p99, rates, tokens, error classes, each row with its runs_url</li>
<li><a href="/api/v1/failures/clusters?from=now-24h">/api/v1/failures/clusters</a> — failure clusters with trends and remediation hints</li>
<li><a href="/metrics">/metrics</a> — Prometheus / OpenMetrics with run_id exemplars</li>
<li><a href="/healthz">/healthz</a></li>
</ul></body></html>"""
    return Response(html, mimetype="text/html")
