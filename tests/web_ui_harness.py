"""Fixtures for the browser tests of the web UI: real servers, one real Chromium, the demo workload.

- ``NOW``: the instant the browser tests run at, whatever the wall clock says. The demo ends there,
  the app's clock (``create_app(clock=)``) and the browser's ``Date`` (Playwright's clock) are pinned
  to it, so "the last 24 h" is the same data at every hour of the day and every day of the week.
  It is the demo of ``tests/test_regressions_api.py`` (8 days × 1,500 runs/day ending on a
  Wednesday at 18:00 UTC), on which the API test proves the injected gpt-4o-mini × refund_request
  regression is the first finding; the wall-clock end the tests had before made the first finding
  depend on the hour (the daily rhythm and the daily crm_update burst moved with it).
- ``demo_db``: that demo workload (seed 7) stored once per session in SQLite.
- ``demo_server`` / ``hostile_server``: the real app on a werkzeug server thread, ephemeral port.
- ``browser``: one Debian Chromium per session, driven by Playwright's sync API.
- ``page``: a fresh page per test, its clock pinned to ``NOW``, that records console errors, page
  errors, CSP violations and dialogs; the test fails at teardown if any happened (unless it called
  ``page.allow_errors()``).

Until the regressions (#11) and alerts endpoints are on main, ``demo_server`` registers small
stand-ins for them — only here, in the tests — so the dashboard's regression and alert views can
be rendered and drilled into. The stand-ins derive every number from the real store (summary rows
of the current and baseline windows); the acceptance test that needs the real regression analysis
skips without it. Once the real routes exist they are used and no stand-in is registered.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hypermindlabs.config import Settings
from hypermindlabs.store import EventStore
from hypermindlabs.wiring import build_pipeline
from tests.conftest import require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "tests" / "screenshots"
DEMO_DAYS = 8
DEMO_RUNS_PER_DAY = 1500
#: The tests' "now" (see the module docstring): a Wednesday, on the hour, as in test_regressions_api.
NOW = datetime(2026, 3, 4, 18, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
NOW_NS = NOW_MS * 10**6
#: How long a page may take to fill every panel. The tests check what the pages show, not how fast
#: (bench/ui.py measures that); on a loaded CI machine the cold regression analysis alone took 8-10 s.
LOAD_TIMEOUT_MS = 90_000
#: The servers' read deadline (Settings.query_timeout_ms, default 10 s) for the same reason: a read
#: cut at 10 s under load answered 503 and failed a test that is not about speed.
QUERY_TIMEOUT_MS = 120_000


@dataclass
class Server:
    url: str
    store: EventStore
    app: Any
    stand_ins: list[str] = field(default_factory=list)
    token: str | None = None  # the bearer token get() sends, when the server wants one

    def get(self, path: str, params: Any = None) -> Any:
        import requests

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        r = requests.get(self.url + path, params=params, headers=headers, timeout=QUERY_TIMEOUT_MS / 1000)
        r.raise_for_status()
        return r.json()


def _serve(app: Any) -> tuple[str, Any, threading.Thread]:
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=srv.serve_forever, name="web-ui-test-server", daemon=True)
    t.start()
    return f"http://127.0.0.1:{srv.server_port}", srv, t


def _has_route(app: Any, rule: str, method: str = "GET") -> bool:
    return any(r.rule == rule and method in (r.methods or ()) for r in app.url_map.iter_rules())


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    from hypermindlabs.demo.load import load_demo

    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    pipeline = build_pipeline(Settings(database_url=url))
    result = load_demo(pipeline.store, seed=7, days=DEMO_DAYS, runs_per_day=DEMO_RUNS_PER_DAY, end=NOW, progress=False)
    assert result.accepted > 0 and not result.rejected
    pipeline.close()
    return url


def start_server(
    url: str,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    environ: dict[str, str] | None = None,
    token: str | None = None,
    **settings: Any,
) -> Iterator[Server]:
    """The app over ``url``; with ``environ``, its settings read from those HYPERMIND_* variables."""
    from hypermindlabs.web import create_app

    settings.setdefault("query_timeout_ms", QUERY_TIMEOUT_MS)
    cfg = (
        Settings.from_env(environ, database_url=url, **settings)
        if environ is not None
        else Settings(database_url=url, **settings)
    )
    pipeline = build_pipeline(cfg)
    store = pipeline.store
    app = create_app(pipeline.settings, pipeline=pipeline, clock=lambda: NOW_NS)
    stand_ins = []
    if not _has_route(app, "/api/v1/regressions"):
        from tests.web_ui_stand_ins import regressions_stand_in

        app.register_blueprint(regressions_stand_in())
        stand_ins.append("regressions")
    if not _has_route(app, "/api/v1/alerts"):
        from tests.web_ui_stand_ins import alerts_stand_in

        app.register_blueprint(alerts_stand_in())
        stand_ins.append("alerts")
    base, srv, thread = _serve(app)
    yield Server(base, store, app, stand_ins, token)
    srv.shutdown()
    thread.join(5)
    store.close()


@pytest.fixture(scope="session")
def demo_server(demo_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(demo_db, tmp_path_factory)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require(os.path.exists(CHROMIUM) or shutil.which("chromium") is not None, f"Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        require(False, "Python Playwright (pip install -e '.[test]')")
        raise
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watched:
    """A Playwright page plus everything that went wrong on it."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.tolerate = False
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("dialog", self._dialog)
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', (e) => {"
            " console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI); });"
        )

    def _dialog(self, d: Any) -> None:
        self.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    def allow_errors(self) -> None:
        self.tolerate = True

    def open(self, url: str, *, ready: str = "body[data-loaded]") -> Any:
        self.page.goto(url)
        self.page.wait_for_selector(ready, timeout=LOAD_TIMEOUT_MS)
        return self.page

    def wait_loaded(self) -> None:
        self.page.wait_for_selector("body[data-loaded]", timeout=LOAD_TIMEOUT_MS)


def new_context(browser: Any, **context: Any) -> Any:
    """A browser context whose ``Date.now()`` / ``new Date()`` is ``NOW`` (timers keep running)."""
    ctx = browser.new_context(**{"viewport": {"width": 1400, "height": 1000}, **context})
    ctx.clock.set_fixed_time(NOW)
    ctx.set_default_timeout(LOAD_TIMEOUT_MS)
    return ctx


def new_watched(browser: Any, **context: Any) -> Iterator[Watched]:
    ctx = new_context(browser, **context)
    w = Watched(ctx.new_page())
    yield w
    ctx.close()
    assert not w.dialogs, f"dialogs opened: {w.dialogs}"
    if not w.tolerate:
        assert not w.errors, "errors on the page:\n" + "\n".join(w.errors)


@pytest.fixture
def page(browser: Any) -> Iterator[Watched]:
    yield from new_watched(browser)


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def all_run_rows(w: Watched) -> list[dict[str, str]]:
    """Every run on the current run list, following its "next page" links; rows as dicts of cells."""
    rows: list[dict[str, str]] = []
    while True:
        w.page.wait_for_selector("#run-list[data-state=ready], #run-list[data-state=empty]", timeout=LOAD_TIMEOUT_MS)
        for tr in w.page.query_selector_all("[data-testid=run-row]"):
            cells = [td.inner_text() for td in tr.query_selector_all("th, td")]
            rows.append({"run_id": tr.get_attribute("data-run-id") or "", "start_ms": int(tr.get_attribute("data-start") or 0),
                         "status": cells[2], "project": cells[3],
                         "model": cells[4], "scenario": cells[5], "failure_class": cells[9]})  # fmt: skip
        nxt = w.page.query_selector("[data-testid=next-page]")
        if nxt is None:
            return rows
        with w.page.expect_navigation():
            nxt.click()
        w.wait_loaded()
