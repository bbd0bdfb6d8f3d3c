"""Bad event input is refused per event at parse time, the same way on SQLite and PostgreSQL.

Each case here was found by probing the running API (issue #7, build item 7): the invalid event is
reported by index and field, and the valid events beside it are stored, never lost with it.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import FIXED_NOW_NS

T0 = FIXED_NOW_NS - 3600 * 10**9


def run(i: int, **over: Any) -> dict[str, Any]:
    ev = {"run_id": f"r{i}", "kind": "run", "start_time": T0 + i * 10**9, "duration_ms": 120,
          "project": "support", "scenario": "refund", "model": "gpt-4o", "tags": {"env": "prod"}}  # fmt: skip
    ev.update(over)
    return ev


def step(i: int, **over: Any) -> dict[str, Any]:
    ev = {"run_id": f"r{i}", "kind": "tool", "start_time": T0 + i * 10**9 + 1000, "duration_ms": 20, "tool": "search"}
    ev.update(over)
    return ev


def post(client, payload: Any):
    return client.post("/api/v1/events", data=orjson.dumps(payload), content_type="application/json")


def stored_runs(client) -> list[str]:
    return sorted(r["run_id"] for r in client.get("/api/v1/runs?limit=1000").get_json()["runs"])


# (how the bad value is placed in an event, the field the rejection must name)
NUL_PLACES: dict[str, tuple[Any, str]] = {
    "run_id": (lambda s: {"run_id": "r2" + s}, "run_id"),
    "event_id": (lambda s: {"event_id": "e" + s}, "event_id"),
    "name": (lambda s: {"name": "plan" + s}, "name"),
    "project": (lambda s: {"project": "support" + s}, "project"),
    "model": (lambda s: {"model": s + "gpt"}, "model"),
    "tool": (lambda s: {"tool": "crm" + s}, "tool"),
    "scenario": (lambda s: {"scenario": "re" + s + "fund"}, "scenario"),
    "a tag value": (lambda s: {"tags": {"env": "prod" + s}}, "tags.env"),
    "error.type": (lambda s: {"status": "error", "error": {"type": "Timeout" + s}}, "error.type"),
    "error.message": (lambda s: {"status": "error", "error": {"message": "boom" + s}}, "error.message"),
    "error.class": (lambda s: {"status": "error", "error": {"class": "tool_timeout" + s}}, "error.class"),
    "an attribute value": (lambda s: {"attributes": {"note": ["ok", "x" + s]}}, "attributes.note"),
    "an attribute key": (lambda s: {"attributes": {"a" + s: 1}}, "attributes"),
}


@pytest.mark.parametrize("place", list(NUL_PLACES), ids=[f"a NUL byte in {p}" for p in NUL_PLACES])
def test_a_nul_byte_in_any_string_field_rejects_that_event_only(client, place: str) -> None:
    build, field = NUL_PLACES[place]
    r = post(client, [run(1), run(2, **build("\x00")), run(3)])
    assert r.status_code == 207, r.get_data(as_text=True)[:300]
    body = r.get_json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [(1, field)]
    assert "NUL" in body["rejected"][0]["error"]
    assert stored_runs(client) == ["r1", "r3"]


@pytest.mark.parametrize(
    "bad",
    ["\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u202a", "\u2066", "\u2069", "\x07"],
    ids=["C1 NEL", "C1 CSI", "U+2028 line separator", "U+2029 paragraph separator", "RLO bidi override",
         "LRE bidi embedding", "LRI bidi isolate", "PDI bidi isolate", "C0 bell"],
)  # fmt: skip
@pytest.mark.parametrize("field", ["run_id", "event_id"])
def test_identifiers_refuse_control_separator_and_bidi_characters(client, field: str, bad: str) -> None:
    r = post(client, [run(1), run(2, **{field: f"id{bad}2"}), run(3)])
    assert r.status_code == 207, r.get_data(as_text=True)[:300]
    body = r.get_json()
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [(1, field)]
    assert body["accepted"] == 2 and stored_runs(client) == ["r1", "r3"]


def test_identifiers_keep_ordinary_unicode(client) -> None:
    r = post(client, [run(1, run_id="équipe/α/42", event_id="é-1")])
    assert r.status_code == 200 and r.get_json()["accepted"] == 1


def test_the_same_event_id_with_other_content_is_a_conflict_not_a_duplicate(client) -> None:
    assert post(client, [run(1, event_id="ev-1")]).status_code == 200
    r = post(client, [run(2, event_id="ev-1")])
    assert r.status_code == 400
    body = r.get_json()
    assert body["accepted"] == 0 and body["duplicates"] == 0
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [(0, "event_id")]
    assert "different content" in body["rejected"][0]["error"]
    assert stored_runs(client) == ["r1"]


def test_an_identical_resend_of_an_explicit_event_id_is_still_a_duplicate(client) -> None:
    batch = [step(1, event_id="s-1"), run(1, event_id="ev-1", attributes={"b": 1, "a": [1.5, "x"]})]
    assert post(client, batch).get_json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    again = post(client, batch)
    assert again.status_code == 200
    assert again.get_json() == {"accepted": 0, "duplicates": 2, "rejected": []}


def test_a_resent_child_that_inherited_its_runs_dimensions_is_still_a_duplicate(client) -> None:
    # Stored before its run, the step later inherits project/model/scenario from it; the client's
    # retry of the same step (without those fields) is the same event.
    child = step(1, event_id="s-1")
    assert post(client, [child]).status_code == 200
    assert post(client, [run(1)]).status_code == 200
    events = client.get("/api/v1/runs/r1").get_json()["events"]
    assert next(e for e in events if e["event_id"] == "s-1")["project"] == "support"
    again = post(client, [child])
    assert again.status_code == 200 and again.get_json()["duplicates"] == 1


def test_one_batch_with_an_event_id_twice_keeps_the_first_and_rejects_the_different_second(client) -> None:
    batch = [step(1, event_id="s-1"), step(1, event_id="s-1"), step(1, event_id="s-1", tool="other"), run(1)]
    r = post(client, batch)
    assert r.status_code == 207
    body = r.get_json()
    assert body["accepted"] == 2 and body["duplicates"] == 1
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [(2, "event_id")]
    tools = [e["tool"] for e in client.get("/api/v1/runs/r1").get_json()["events"] if e["kind"] == "tool"]
    assert tools == ["search"]


@pytest.mark.parametrize(
    "value",
    ["２０２５-12-31T23:00:00Z", "2025-12-31T２３:00:00Z", "2025-12-31T23:00:00.１２Z", "2025-12-31T23:00:00+０1:00",
     "٢٠٢٥-12-31T23:00:00Z", "2025-12-31T23:59:60Z", "2025-12-31T23:00:60+01:00", "1767222000", "1767222000000",
     "1767222000.5", "1_767_222_000", "1e9"],
    ids=["fullwidth year", "fullwidth hour", "fullwidth fraction", "fullwidth offset", "Arabic-Indic year",
         "a :60 second", "a :60 second with an offset", "epoch seconds as a string", "epoch ms as a string",
         "a decimal epoch as a string", "an epoch with underscores", "an exponent string"],
)  # fmt: skip
def test_event_times_are_parsed_strictly(client, value: str) -> None:
    late = run(3, start_time="2025-12-31T22:00:00Z", end_time=value, duration_ms=None)
    r = post(client, [run(1), run(2, start_time=value), late])
    assert r.status_code == 207, r.get_data(as_text=True)[:300]
    body = r.get_json()
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [(1, "start_time"), (2, "end_time")]
    assert stored_runs(client) == ["r1"]


def test_strict_times_still_take_every_documented_form(client) -> None:
    forms = ["2025-12-31T23:00:00Z", "2025-12-31t23:00:00.123456789z", "2025-12-31 23:00:00+01:00",
             1767222000, 1767222000.25, 1767222000000, 1767222000000000, 1767222000000000000]  # fmt: skip
    r = post(client, [run(i, start_time=v) for i, v in enumerate(forms)])
    assert r.status_code == 200 and r.get_json()["accepted"] == len(forms)
