"""The HTTP API on both backends: ingest status codes, per-event errors, lookup, filters, auth."""

from __future__ import annotations

import orjson
import pytest

from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from tests.conftest import FIXED_NOW_NS

T0 = FIXED_NOW_NS - 3600 * 10**9


def run(i: int, **over):
    ev = {"run_id": f"r{i}", "kind": "run", "start_time": T0 + i * 10**9, "duration_ms": 120,
          "project": "support", "scenario": "refund", "model": "gpt-4o", "tags": {"env": "prod"}}  # fmt: skip
    ev.update(over)
    return ev


def step(i: int, kind: str = "tool", **over):
    ev = {"run_id": f"r{i}", "kind": kind, "start_time": T0 + i * 10**9 + 1000, "duration_ms": 20, "tool": "web_search"}
    ev.update(over)
    return ev


def post(client, payload, content_type="application/json"):
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return client.post("/api/v1/events", data=body, content_type=content_type)


def test_an_array_is_stored_with_200_and_a_repost_stores_nothing(client, store):
    batch = [step(1), run(1), step(2, "llm", usage={"input_tokens": 5, "output_tokens": 1}), run(2)]
    r = post(client, batch)
    assert r.status_code == 200
    assert r.get_json() == {"accepted": 4, "duplicates": 0, "rejected": []}
    again = post(client, batch)
    assert again.status_code == 200
    assert again.get_json() == {"accepted": 0, "duplicates": 4, "rejected": []}
    assert store.count_events() == 4


def test_a_single_object_is_accepted(client):
    r = post(client, run(1))
    assert r.status_code == 200 and r.get_json()["accepted"] == 1


def test_ndjson_is_accepted_and_a_bad_line_is_reported_by_index(client, store):
    lines = b"\n".join([orjson.dumps(run(1)), b"{not json", orjson.dumps(run(2)), b""])
    r = post(client, lines, "application/x-ndjson")
    assert r.status_code == 207
    body = r.get_json()
    assert body["accepted"] == 2 and body["rejected"][0]["index"] == 1 and body["rejected"][0]["field"] == "$"
    assert store.count_events() == 2


def test_a_mixed_batch_answers_207_and_stores_exactly_the_valid_events(client, store):
    batch = [run(1), run(2, kind="agent"), step(3, start_time="soon"), run(4), run(5, usage={"input_tokens": -1})]
    r = post(client, batch)
    assert r.status_code == 207
    body = r.get_json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [
        (1, "kind"),
        (2, "start_time"),
        (4, "usage.input_tokens"),
    ]
    assert all(x["error"] for x in body["rejected"])
    assert sorted(e["run_id"] for e in client.get("/api/v1/runs").get_json()["runs"]) == ["r1", "r4"]
    assert store.count_events() == 2


def test_an_all_invalid_batch_answers_400_and_stores_nothing(client, store):
    r = post(client, [{"kind": "run"}, {"run_id": "x"}])
    assert r.status_code == 400
    assert [x["field"] for x in r.get_json()["rejected"]] == ["run_id", "kind"]
    assert store.count_events() == 0


@pytest.mark.parametrize(
    "body",
    [b'{"run_id": ', b"[1, 2", b"", b"42", b'"text"'],
    ids=["truncated object", "truncated array", "empty", "a number", "a string"],
)
def test_malformed_json_answers_400_with_a_json_error(client, store, body):
    r = post(client, body)
    assert r.status_code == 400
    assert r.is_json and r.get_json()["field"] == "body" and r.get_json()["error"]
    assert store.count_events() == 0


def test_a_reused_run_id_is_rejected_with_207(client):
    post(client, run(1))
    r = post(client, [run(1, status="error"), run(2)])
    assert r.status_code == 207
    assert r.get_json()["rejected"][0]["field"] == "run_id"


def test_run_lookup_returns_the_trace_in_order(client):
    post(client, [step(1, "llm", start_time=T0 + 10**9 + 500, name="second"), run(1, name="root"),
                  step(1, start_time=T0 + 10**9 + 100, name="first")])  # fmt: skip
    r = client.get("/api/v1/runs/r1")
    assert r.status_code == 200
    assert [e["name"] for e in r.get_json()["events"]] == ["root", "first", "second"]
    missing = client.get("/api/v1/runs/nope")
    assert missing.status_code == 404 and missing.get_json()["field"] == "run_id"


def test_run_ids_with_slashes_and_unicode_resolve(client):
    post(client, run(1, run_id="team/α/42"))
    assert client.get("/api/v1/runs/team/α/42").get_json()["run"]["run_id"] == "team/α/42"


def test_run_list_filters_and_pagination(client):
    batch = []
    for i in range(1, 31):
        batch.append(run(i, project="a" if i % 2 else "b", tags={"env": "prod" if i % 3 else "staging"}))
        if i % 5 == 0:
            batch.append(step(i, tool="crm_update"))
    post(client, batch)
    got = client.get("/api/v1/runs?project=a&tag.env=staging&limit=100").get_json()["runs"]
    assert sorted(int(r["run_id"][1:]) for r in got) == [i for i in range(1, 31) if i % 2 and i % 3 == 0]
    assert [r["run_id"] for r in client.get("/api/v1/runs?tool=crm_update").get_json()["runs"]] == [
        f"r{i}" for i in (30, 25, 20, 15, 10, 5)
    ]
    window = client.get(f"/api/v1/runs?from={(T0 + 10 * 10**9) // 10**6}&to=now-{3600 - 20}s").get_json()["runs"]
    assert sorted(int(r["run_id"][1:]) for r in window) == list(range(10, 20))
    page1 = client.get("/api/v1/runs?limit=7").get_json()
    page2 = client.get(f"/api/v1/runs?limit=7&cursor={page1['next_cursor']}").get_json()
    assert [r["run_id"] for r in page1["runs"] + page2["runs"]] == [f"r{i}" for i in range(30, 16, -1)]


@pytest.mark.parametrize(
    "query, field",
    [("from=yesterday", "from"), ("limit=0", "limit"), ("limit=x", "limit"), ("colour=red", "colour"),
     ("tag.=x", "tag."), ("status=maybe", "status"), ("from=now-1h&to=now-2h", "to"), ("cursor=%%%", "cursor")],
)  # fmt: skip
def test_bad_query_parameters_answer_400_naming_the_parameter(client, query, field):
    r = client.get(f"/api/v1/runs?{query}")
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_healthz_and_unknown_api_routes(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/api/v1/nothing")
    assert r.status_code == 404 and r.is_json


def test_a_bearer_token_protects_the_api_but_not_healthz(pipeline):
    app = create_app(Settings(database_url="unused", api_token="s3cret"), pipeline=pipeline)
    c = app.test_client()
    assert c.get("/healthz").status_code == 200
    assert c.get("/api/v1/runs").status_code == 401
    assert c.get("/api/v1/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/v1/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_oversized_batches_are_refused_whole(pipeline, store):
    app = create_app(Settings(database_url="unused", max_batch_events=3), pipeline=pipeline)
    r = app.test_client().post("/api/v1/events", json=[run(i) for i in range(4)])
    assert r.status_code == 413 and r.get_json()["field"] == "body"
    assert store.count_events() == 0
