"""The stored event: a :class:`~hypermindlabs.core.events.RunEvent` plus what the store adds.

The store adds a sequence number, the dimensions a child inherited from its run, and triage's
failure class and cluster id. :func:`event_json` is the one place the API's event shape is made
(``GET /api/v1/runs``, the trace of ``GET /api/v1/runs/<id>``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

import orjson

from hypermindlabs.core.events import RunEvent, chars_to_tokens, format_timestamp

__all__ = ["StoredEvent", "stored_event", "event_json", "event_tokens", "run_tokens"]


class StoredEvent(TypedDict):
    """One stored event as the ``events`` table holds it: what rollups, triage, export and the API read.

    The :class:`~hypermindlabs.core.events.RunEvent`'s fields under their column names (times in
    Unix ns), the dimensions a child inherited from its run, triage's ``failure_class`` and
    ``cluster_id``; ``tags`` and ``attributes`` are JSON object text; ``seq`` is the database's
    (absent until the row is inserted).
    """

    event_id: str
    run_id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    name: str | None
    start_ns: int
    end_ns: int
    status: str
    project: str | None
    model: str | None
    tool: str | None
    scenario: str | None
    input_tokens: int | None
    output_tokens: int | None
    input_chars: int | None
    output_chars: int | None
    tokens_estimated: bool
    error_type: str | None
    error_message: str | None
    error_class: str | None
    failure_class: str | None
    cluster_id: str | None
    tags: str
    attributes: str
    seq: NotRequired[int]


def stored_event(ev: RunEvent) -> StoredEvent:
    """The row the store inserts for a parsed event (before inheritance and triage fill it in)."""
    return {
        "event_id": ev.event_id,
        "run_id": ev.run_id,
        "trace_id": ev.trace_id,
        "span_id": ev.span_id,
        "parent_span_id": ev.parent_span_id,
        "kind": ev.kind,
        "name": ev.name,
        "start_ns": ev.start_time_unix_nano,
        "end_ns": ev.end_time_unix_nano,
        "status": ev.status,
        "project": ev.project,
        "model": ev.model,
        "tool": ev.tool,
        "scenario": ev.scenario,
        "input_tokens": ev.input_tokens,
        "output_tokens": ev.output_tokens,
        "input_chars": ev.input_chars,
        "output_chars": ev.output_chars,
        "tokens_estimated": ev.tokens_estimated,
        "error_type": ev.error_type,
        "error_message": ev.error_message,
        "error_class": ev.error_class,
        "failure_class": None,
        "cluster_id": None,
        "tags": orjson.dumps(dict(ev.tags)).decode(),
        "attributes": ev.attributes_json,
    }




def event_json(m: Mapping[str, Any]) -> dict[str, Any]:
    """A stored event (its column mapping) in the API's event shape: contract fields plus derived ones."""
    err = None
    if m["error_type"] is not None or m["error_message"] is not None or m["error_class"] is not None:
        err = {"type": m["error_type"], "message": m["error_message"], "class": m["error_class"]}
    return {
        "seq": m["seq"],
        "event_id": m["event_id"],
        "run_id": m["run_id"],
        "trace_id": m["trace_id"],
        "span_id": m["span_id"],
        "parent_span_id": m["parent_span_id"],
        "kind": m["kind"],
        "name": m["name"],
        "start_time": format_timestamp(m["start_ns"]),
        "end_time": format_timestamp(m["end_ns"]),
        "start_time_unix_nano": m["start_ns"],
        "end_time_unix_nano": m["end_ns"],
        "duration_ms": (m["end_ns"] - m["start_ns"]) / 1e6,
        "status": m["status"],
        "project": m["project"],
        "model": m["model"],
        "tool": m["tool"],
        "scenario": m["scenario"],
        "tags": orjson.loads(m["tags"]),
        "usage": {
            "input_tokens": m["input_tokens"],
            "output_tokens": m["output_tokens"],
            "input_chars": m["input_chars"],
            "output_chars": m["output_chars"],
            "estimated": bool(m["tokens_estimated"]),
        },
        "error": err,
        "failure_class": m["failure_class"],
        "cluster_id": m["cluster_id"],
        "attributes": orjson.loads(m["attributes"]),
    }


Tokens = tuple[int, int, int, int]


def event_tokens(row: Mapping[str, Any]) -> Tokens:
    """(input, output, input proxy, output proxy) of one stored event: real counts apart from
    character proxies.

    The store keeps one ``tokens_estimated`` flag per event; a side is a proxy when the flag is
    set and its token count is the proxy of its character count.
    """
    it, ot = row["input_tokens"], row["output_tokens"]
    if not row["tokens_estimated"]:
        return it or 0, ot or 0, 0, 0
    ic, oc = row["input_chars"], row["output_chars"]
    in_proxy = it is not None and ic is not None and it == chars_to_tokens(ic)
    out_proxy = ot is not None and oc is not None and ot == chars_to_tokens(oc)
    return (
        0 if in_proxy else it or 0,
        0 if out_proxy else ot or 0,
        it if in_proxy else 0,
        ot if out_proxy else 0,
    )


def run_tokens(run: Mapping[str, Any], children: Iterable[Mapping[str, Any]]) -> Tokens:
    """A run's tokens as the API, the rollups and /metrics all count them: the run's own usage when
    it carries any, else the sum of its LLM steps'."""
    if run["input_tokens"] is not None or run["output_tokens"] is not None:
        return event_tokens(run)
    tok = (0, 0, 0, 0)
    for ch in children:
        if ch["kind"] == "llm":
            t = event_tokens(ch)
            tok = (tok[0] + t[0], tok[1] + t[1], tok[2] + t[2], tok[3] + t[3])
    return tok
