"""Behaviour freeze: a fixed set of API calls on a fixed demo database answer byte-identical JSON.

Saved before the architecture move (issue #7) so the restructuring can be shown to change no
answer. The database is the demo workload with a fixed seed and end time, loaded through the
app's own store (so ``/metrics`` sees it too), and every call runs under a fixed clock.

Regenerate deliberately (after an intended behaviour change, listed below) with
``HYPERMIND_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_behaviour_freeze.py``
and review the diff.

Intended changes since the freeze (each is a bug fix of issue #7, listed here by the rule):
- failure clusters: ``concentration`` and ``affected`` list tied values by value; before, ties came
  in set iteration order, so the answer changed with ``PYTHONHASHSEED`` (found by this test).
- issue #9 (triage): a failed run carries its root cause's class and cluster, so run rows, the
  metrics API's error classes, ``cluster=``/``error_class=`` run lists, the clusters answer (new
  counts and fields, trend buckets aligned to hours) and ``hypermind_failures_total`` (one per
  failed run) changed; ALGORITHM_VERSION 2 changed cluster ids of retrieval and policy failures.
- ``/metrics`` (issue #8) renders the store's exported-series view: counters and histograms cover every
  stored run, run tokens come from the LLM steps when the run has none, ``hypermind_failures_total``
  became ``hypermind_agent_run_failures_total`` (once per failed run), exemplars carry the event's end time.
- migration 0022 (issue #10): answers on one dimension or member name the narrow cube they read in
  ``source`` (``tag_only``, ``tool_only``, step ``model`` and ``tool``); every number is unchanged.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from hypermindlabs.config import Settings

GOLDEN = Path(__file__).parent / "golden" / "behaviour_freeze.json"
REGENERATE = os.environ.get("HYPERMIND_REGENERATE_GOLDEN") == "1"

END = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
NOW_NS = int(END.timestamp()) * 10**9
SEED, DAYS, RUNS_PER_DAY = 7, 2, 250

# The window of the workload, as the API's three time forms.
FROM_ISO, TO_ISO = "2025-12-30T00:00:00Z", "2026-01-01T00:00:00Z"
FROM_MS = str(int(datetime(2025, 12, 30, tzinfo=UTC).timestamp() * 1000))
TO_MS = str(int(END.timestamp() * 1000))

CALLS: tuple[str, ...] = (
    # runs list: filters, pagination, tags, status, error class
    "/api/v1/runs?limit=5",
    "/api/v1/runs?limit=3&status=error",
    "/api/v1/runs?limit=4&model=gpt-4o-mini&from=now-12h",
    "/api/v1/runs?limit=4&tool=web_search",
    "/api/v1/runs?limit=4&tag.env=prod&scenario=refund_request",
    f"/api/v1/runs?limit=2&from={FROM_MS}&to={TO_MS}&error_class=tool_timeout",
    "/api/v1/runs?limit=1000&from=now-6h",
    # bad input answers (must stay 400 naming the field)
    "/api/v1/runs?limit=0",
    "/api/v1/runs?limit=abc",
    "/api/v1/runs?cursor=%%%",
    "/api/v1/runs?from=yesterday",
    "/api/v1/runs?bogus=1",
    "/api/v1/runs/no-such-run",
    # metrics summary: group_by variants, kinds, filters
    "/api/v1/metrics/summary",
    f"/api/v1/metrics/summary?from={FROM_ISO}&to={TO_ISO}",
    "/api/v1/metrics/summary?from=now-48h&group_by=model",
    "/api/v1/metrics/summary?from=now-48h&group_by=scenario",
    "/api/v1/metrics/summary?from=now-48h&group_by=tool",
    "/api/v1/metrics/summary?from=now-48h&group_by=project,model",
    "/api/v1/metrics/summary?from=now-48h&group_by=error_class",
    "/api/v1/metrics/summary?from=now-48h&group_by=tag.release",
    "/api/v1/metrics/summary?from=now-48h&group_by=tag.env,error_class",
    "/api/v1/metrics/summary?from=now-48h&group_by=model,scenario,error_class&limit=5",
    "/api/v1/metrics/summary?from=now-48h&kind=tool&group_by=tool",
    "/api/v1/metrics/summary?from=now-48h&kind=llm&group_by=model",
    "/api/v1/metrics/summary?from=now-48h&kind=llm,tool&group_by=kind",
    "/api/v1/metrics/summary?from=now-48h&status=error&group_by=model",
    "/api/v1/metrics/summary?from=now-30h&to=now-2h&tool=web_search&group_by=scenario",
    "/api/v1/metrics/summary?group_by=bogus",
    "/api/v1/metrics/summary?group_by=a,b,c,d",
    "/api/v1/metrics/summary?kind=run,tool",
    # metrics timeseries
    "/api/v1/metrics/timeseries",
    "/api/v1/metrics/timeseries?from=now-48h&step=6h",
    "/api/v1/metrics/timeseries?from=now-48h&step=1h&group_by=model",
    "/api/v1/metrics/timeseries?from=now-24h&group_by=scenario",
    "/api/v1/metrics/timeseries?from=now-48h&step=12h&group_by=error_class",
    "/api/v1/metrics/timeseries?from=now-48h&step=1d&kind=tool&group_by=tool",
    f"/api/v1/metrics/timeseries?from={FROM_MS}&to={TO_MS}&step=4h&group_by=tag.release",
    "/api/v1/metrics/timeseries?step=7s",
    # failure clusters
    "/api/v1/failures/clusters",
    "/api/v1/failures/clusters?from=now-48h",
    "/api/v1/failures/clusters?from=now-48h&buckets=6&samples=2",
    "/api/v1/failures/clusters?from=now-48h&model=gpt-4o-mini",
    "/api/v1/failures/clusters?from=now-48h&tag.env=prod&samples=0",
    "/api/v1/failures/clusters?buckets=0",
    # health
    "/healthz",
)


def _answer(client: Any, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = client.get(url, headers=headers or {})
    if resp.mimetype == "application/json":
        body: Any = orjson.loads(resp.get_data())
    else:
        body = resp.get_data(as_text=True)
    return {"status": resp.status_code, "content_type": resp.mimetype, "body": body}


def _record(make_pipeline: Any) -> dict[str, Any]:
    from hypermindlabs.demo import load_demo
    from hypermindlabs.web import create_app

    pipeline = make_pipeline()
    store = pipeline.store
    app = create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: NOW_NS)
    result = load_demo(store, seed=SEED, days=DAYS, runs_per_day=RUNS_PER_DAY, end=END, progress=False)
    assert result.accepted > 1000 and not result.rejected
    client = app.test_client()
    answers: dict[str, Any] = {}
    # Calls that need a real run id / cursor from the store: the first page's first failed run etc.
    first = client.get("/api/v1/runs?limit=3&status=error").get_json()
    failed_run = first["runs"][0]["run_id"]
    ok_run = client.get("/api/v1/runs?limit=1&status=ok").get_json()["runs"][0]["run_id"]
    calls = [
        *CALLS,
        f"/api/v1/runs/{failed_run}",
        f"/api/v1/runs/{ok_run}",
        f"/api/v1/runs?limit=3&status=error&cursor={first['next_cursor']}",
    ]
    for url in calls:
        answers[url] = _answer(client, url)
    # /metrics: the classic text format (no exemplars, whose timestamps are wall-clock).
    answers["/metrics (text/plain)"] = _answer(client, "/metrics", {"Accept": "text/plain"})
    return answers


def _dump(answers: dict[str, Any]) -> bytes:
    return orjson.dumps(answers, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def test_fixed_api_calls_on_the_fixed_demo_database_answer_byte_identical_json(make_pipeline, backend):
    answers = _record(make_pipeline)
    got = _dump(answers)
    if REGENERATE and backend == "sqlite":
        GOLDEN.write_bytes(got)
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing; regenerate it with HYPERMIND_REGENERATE_GOLDEN=1")
    want = GOLDEN.read_bytes()
    if got != want:
        expected = orjson.loads(want)
        differing = sorted(k for k in expected.keys() | answers.keys() if expected.get(k) != answers.get(k))
        # The first differing call in full, so a failure says what changed.
        first = differing[0]
        assert answers.get(first) == expected.get(first), f"{len(differing)} calls differ, e.g. {first}"
        assert got == want, f"{len(differing)} calls differ: {differing[:10]}"
