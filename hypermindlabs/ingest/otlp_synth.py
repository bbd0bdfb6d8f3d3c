"""The run event of a trace whose root span never arrived, built from its stored children. Pure.

After ``HYPERMIND_OTLP_ROOT_TIMEOUT_S`` without a new span of the trace, the sweep
(:func:`hypermindlabs.ingest.otlp.sweep`) closes the run with this event so the children count
as a run (rates, latency, triage) instead of staying invisible in run lists forever.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from hypermindlabs.ingest.otlp_mapping import fold_held

__all__ = ["synthesize_run", "synthesized_event_id"]


def synthesized_event_id(trace_id: str) -> str:
    return f"otlp-{trace_id}-synthesized"


def synthesize_run(
    trace_id: str,
    run_id: str,
    children: Sequence[Mapping[str, Any]],
    template: Mapping[str, Any],
    held: Sequence[dict[str, Any]],
    timeout_s: int,
) -> dict[str, Any] | None:
    """The run object (contract shape) for ``children`` (stored events in API shape), or None if none.

    Span id: the one parent id the top-level children point at (the missing root's own id), so
    the trace tree stays whole. Times: the children's extent. Outcome: that of the top-level child
    that ended last (the agent's last act), its error copied so triage classifies the run.
    """
    if not children and not held:
        return None
    nodes = [*children, *held]  # spans that fit no kind are part of the tree too
    # A trace of spans that all fit no kind still becomes a run (never dropped silently).
    basis = list(children) or list(held)
    ids = {n["span_id"] for n in nodes}
    parents = Counter(n["parent_span_id"] for n in nodes if n.get("parent_span_id") and n["parent_span_id"] not in ids)
    if parents:
        span_id = parents.most_common(1)[0][0]
    else:
        span_id = hashlib.sha256(f"root:{trace_id}".encode()).hexdigest()[:16]
    top = [c for c in basis if c.get("parent_span_id") == span_id] or basis
    last = max(top, key=lambda c: (c["end_time_unix_nano"], c["span_id"]))
    models = {c["model"] for c in children if c.get("kind") == "llm" and c.get("model")}
    first = lambda k: template.get(k) or next((c[k] for c in children if c.get(k)), None)  # noqa: E731
    obj: dict[str, Any] = {
        "event_id": synthesized_event_id(trace_id),
        "run_id": run_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "kind": "run",
        "name": f"(root span {span_id} not received)",
        "start_time": min(c["start_time_unix_nano"] for c in basis),
        "end_time": max(c["end_time_unix_nano"] for c in basis),
        "status": last["status"],
        "project": first("project"),
        "scenario": first("scenario"),
        "tags": dict(template.get("tags") or {}),
        "attributes": fold_held(
            {
                "hypermind.synthesized": True,
                "hypermind.synthesized_reason": f"root span not received within {timeout_s} s of the trace's "
                f"last span; run built from {len(children)} child events and {len(held)} spans of no kind",
            },
            held,
        ),
    }
    if len(models) == 1:
        obj["model"] = next(iter(models))
    err = last.get("error")
    if last["status"] == "error" and err:
        obj["error"] = {k: err.get(k) for k in ("type", "message") if err.get(k) is not None}
    return obj
