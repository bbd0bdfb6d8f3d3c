"""The stored event: a :class:`~hypermindlabs.core.events.RunEvent` plus what the store adds.

The store adds a sequence number, the dimensions a child inherited from its run, and triage's
failure class and cluster id. :func:`event_json` is the one place the API's event shape is made
(``GET /api/v1/runs``, the trace of ``GET /api/v1/runs/<id>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from hypermindlabs.core.events import format_timestamp

__all__ = ["event_json"]


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
