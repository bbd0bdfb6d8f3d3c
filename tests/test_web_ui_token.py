"""The pages on a server with a read token (HYPERMIND_READ_TOKEN set), in a real Chromium.

The API answers 401 without ``Authorization: Bearer <token>``. The pages (open: they hold no data)
say a token is required and send no API request until one is given; the form keeps it in the tab's
``sessionStorage`` and every fetch of every page sends it as that header: never in a URL, a cookie
or the history, the CSP unchanged (no inline script). A refused token is said so, and forgetting it
brings the form back.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from hypermindlabs.web.pages import content_security_policy
from tests.test_web_ui import expected_kpis, kpis, window
from tests.web_ui_harness import Server, all_run_rows, screenshot, start_server

TOKEN = "ui-read-" + secrets.token_hex(12)
API = "/api/v1/"


@pytest.fixture(scope="module")
def token_server(demo_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    gen = start_server(demo_db, tmp_path_factory, environ={"HYPERMIND_READ_TOKEN": TOKEN}, token=TOKEN)
    yield next(gen)
    next(gen, None)


def test_with_a_read_token_set_the_pages_are_marked_and_keep_their_csp(token_server) -> None:
    assert requests.get(token_server.url + "/api/v1/metrics/summary", timeout=10).status_code == 401
    for path in ("/observability", "/runs", "/runs/some-run", "/failures/clusters/abc"):
        r = requests.get(token_server.url + path, timeout=10)
        assert r.status_code == 200, path
        assert '<body data-auth="token">' in r.text and 'id="auth-form"' in r.text, path
        assert r.headers["Content-Security-Policy"] == content_security_policy(None), path
        assert "<script>" not in r.text and TOKEN not in r.text


class Requests:
    """Every API request a page makes: URL and Authorization header."""

    def __init__(self, page: Any) -> None:
        self.seen: list[tuple[str, str | None]] = []
        page.on("request", self._on)

    def _on(self, req: Any) -> None:
        if API in req.url:
            self.seen.append((req.url, req.headers.get("authorization")))


@pytest.mark.browser
def test_without_a_token_the_dashboard_asks_for_one_and_sends_no_api_request(token_server, page) -> None:
    seen = Requests(page.page)
    p = page.open(f"{token_server.url}/observability")
    form = p.locator("[data-testid=token-required]")
    assert form.is_visible()
    assert p.get_attribute("body", "data-auth-state") == "required"
    assert p.evaluate("document.activeElement.id") == "auth-token"
    assert p.get_attribute("#kpis", "data-state") == "error"
    assert "read token is required" in p.inner_text("#kpis")
    assert seen.seen == []  # nothing the server could only refuse
    assert not p.is_visible("[data-testid=token-forget]")
    screenshot(p, "token-required", full_page=False)


@pytest.mark.browser
def test_with_the_token_every_fetch_of_every_page_sends_it_and_the_numbers_equal_the_api(token_server, page) -> None:
    frm, to = window()
    seen = Requests(page.page)
    p = page.open(f"{token_server.url}/observability?from={frm}&to={to}")
    p.fill("[data-testid=token-input]", TOKEN)
    with p.expect_navigation():
        p.click("[data-testid=token-submit]")
    page.wait_loaded()
    assert not p.is_visible("[data-testid=token-required]")
    assert p.is_visible("[data-testid=token-forget]")
    k = kpis(p)
    assert k == expected_kpis(token_server, {"from": frm, "to": to}) and k["kpi-runs"] > 500
    p.wait_for_selector("#chart-latency[data-drawn]")
    p.locator("#triage-panel").scroll_into_view_if_needed()
    p.wait_for_selector("#clusters[data-state=ready]")
    p.wait_for_selector("#tools[data-state=ready]")  # the tool table above it, deferred too
    for panel in ("regressions", "clusters", "alerts", "tools", "by-dimension"):
        assert p.get_attribute(f"#{panel}", "data-state") in ("ready", "empty"), panel
    assert p.evaluate("sessionStorage.getItem('hypermind-obs.read-token')") == TOKEN
    assert TOKEN not in p.evaluate("document.cookie") and TOKEN not in p.url

    # Drill-down: the run list and a trace, fetched with the token too.
    with p.expect_navigation():
        p.click("[data-testid=kpi-error-rate]")
    page.wait_loaded()
    rows = all_run_rows(page)
    assert len(rows) == k["errors"] > 0 and all(r["status"] == "error" for r in rows)
    p.goto(f"{token_server.url}/runs/{quote(rows[0]['run_id'], safe='')}")
    page.wait_loaded()
    assert p.locator("[data-testid=span-row]").count() == len(
        token_server.get(f"/api/v1/runs/{rows[0]['run_id']}")["events"]
    )
    assert p.evaluate("history.length") >= 1 and TOKEN not in p.url

    assert len(seen.seen) >= 12
    assert all(auth == f"Bearer {TOKEN}" for _, auth in seen.seen), [u for u, a in seen.seen if a != f"Bearer {TOKEN}"]
    assert not any(TOKEN in url for url, _ in seen.seen)

    # Forgetting it brings the form back and stops the requests.
    with p.expect_navigation():
        p.click("[data-testid=token-forget]")
    page.wait_loaded()
    assert p.is_visible("[data-testid=token-required]")
    assert p.evaluate("sessionStorage.getItem('hypermind-obs.read-token')") is None


@pytest.mark.browser
def test_a_refused_token_is_said_so_and_no_more_requests_are_sent(token_server, page) -> None:
    seen = Requests(page.page)
    p = page.open(f"{token_server.url}/observability")
    p.fill("[data-testid=token-input]", "not-the-token")
    with p.expect_navigation():
        p.click("[data-testid=token-submit]")
    page.wait_loaded()
    assert p.get_attribute("body", "data-auth-state") == "refused"
    assert p.is_visible("[data-testid=token-required]")
    assert "refused" in p.inner_text("[data-testid=token-message]")
    assert "refused" in p.inner_text("#kpis")
    sent = len(seen.seen)
    assert 0 < sent <= 10 and all(a == "Bearer not-the-token" for _, a in seen.seen)
    # The browser logs each 401 answer as a failed resource load; nothing else may go wrong.
    assert page.errors and all("401" in e for e in page.errors), page.errors
    page.errors.clear()
    # A change of view reloads the panels: no request goes out with the refused token.
    p.select_option("#time-preset", "now-6h")
    p.wait_for_selector('body[data-loaded="2"]')
    assert "from=now-6h" in p.url and p.get_attribute("#kpis", "data-state") == "error"
    assert len(seen.seen) == sent
