"""The web UI after ``hypermind-obs prune`` (real Chromium): the run list over a window reaching
before the retention watermark shows the notice instead of an unexplained short or empty list, and
the page of a pruned run says why it is not stored."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from hypermindlabs.core.events import format_timestamp
from tests.test_rollups import DAY, HOUR, build_runs, ingest, to_events
from tests.web_ui_harness import NOW_MS, NOW_NS, start_server

pytestmark = pytest.mark.browser


@pytest.fixture
def pruned_server(tmp_path, tmp_path_factory):
    gen = start_server(f"sqlite:///{tmp_path / 'ui.db'}", tmp_path_factory)
    server = next(gen)
    runs = build_runs(8, 60, NOW_NS - 4 * DAY, 4 * DAY - HOUR, prefix="ui")
    ingest(server.store, to_events(runs, seed=8))
    cutoff = NOW_NS - 2 * DAY
    server.store.prune(cutoff, now_ns=NOW_NS)
    yield server, cutoff, sorted(r.run_id for r in runs if r.start_ns < cutoff)
    next(gen, None)


def test_the_run_list_says_the_runs_before_the_watermark_were_pruned(browser, pruned_server, page):
    server, cutoff, old = pruned_server
    window = urlencode({"from": str(NOW_MS - 4 * 86_400_000), "to": str(NOW_MS)})
    p = page.open(f"{server.url}/runs?{window}")
    notice = p.get_by_test_id("retention-notice")
    assert notice.is_visible()
    assert format_timestamp(cutoff) in notice.inner_text() and "pruned" in notice.inner_text()
    shown = {r.get_attribute("data-run-id") for r in p.get_by_test_id("run-row").all()}
    assert shown and not shown & set(old)

    before = urlencode({"from": str(NOW_MS - 4 * 86_400_000), "to": str(cutoff // 10**6)})
    p = page.open(f"{server.url}/runs?{before}")
    assert "older runs were pruned" in p.get_by_test_id("run-list").inner_text()

    recent = urlencode({"from": str(cutoff // 10**6 + 1), "to": str(NOW_MS)})
    p = page.open(f"{server.url}/runs?{recent}")
    assert not p.get_by_test_id("retention-notice").is_visible()


def test_the_page_of_a_pruned_run_says_it_was_pruned(browser, pruned_server, page):
    server, cutoff, old = pruned_server
    page.tolerate = True  # the browser logs the API's 404 as a console error
    p = page.open(f"{server.url}/runs/{old[0]}")
    text = p.locator("#trace").inner_text()
    assert "pruned" in text and format_timestamp(cutoff) in text
