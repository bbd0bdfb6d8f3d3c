"""``GET /docs/<page>``: the repository's ``docs/*.md`` rendered as HTML, so alert runbook links resolve.

Alerts carry ``runbook_url = $HYPERMIND_PUBLIC_URL/docs/alerting#<alertname, lower case>``; headings
get ids from Python-Markdown's ``toc`` extension, which lower-cases them the same way. Only files
that exist under ``docs/`` with plain names are served (no paths, no user content).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import markdown
from flask import Blueprint, Response, abort
from markupsafe import escape

bp = Blueprint("docs_pages", __name__)
DOCS = Path(__file__).resolve().parents[2] / "docs"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · hypermind-obs</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .5rem}}code{{background:#f4f4f4}}
pre{{background:#f4f4f4;padding:.5rem;overflow:auto}}</style></head><body>{body}</body></html>"""


@lru_cache(maxsize=32)
def _render(path: Path, mtime_ns: int) -> str:
    body = markdown.markdown(path.read_text(encoding="utf-8"), extensions=["toc", "tables", "fenced_code"])
    return _PAGE.format(title=escape(path.stem), body=body)


@bp.get("/docs/<name>")
def page(name: str) -> Response:
    name = name.removesuffix(".md")
    path = DOCS / f"{name}.md"
    if not _NAME.fullmatch(name) or not path.is_file():
        abort(404)
    resp = Response(_render(path, path.stat().st_mtime_ns), mimetype="text/html")
    # Static text: no scripts, no frames, no outside resources; only the page's own inline style.
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    return resp
