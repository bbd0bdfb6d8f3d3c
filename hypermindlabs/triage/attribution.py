"""Root-cause attribution: which failure a failed run is counted under. Pure.

A failed run belongs to exactly one cluster, that of its *root cause* (DESIGN.md §6). The rule,
a function of the run's stored events only (so any arrival order gives the same answer):

1. The run's failed steps form its *failing path*: start at the run's span; at each level take
   the failed steps whose parent is the current span (steps whose parent is no stored step of the
   run count as the run's direct children); follow the one that **ended last**, and continue into
   its failed children. An earlier failed sibling was followed by more work at that level (a
   retry, a fallback, a model that read the error and went on): it was handled, not propagated.
2. The root cause is where the path stops: the deepest failed step on it (no failed children).
   Ties on the end time go to the later start (the inner one), then to the smaller ``event_id``.
3. No failed step on the path (none failed, or only below steps that ended ok): the run's own
   error is the root cause.

A step that failed inside a run that ended ok is a *recovered* failure: it never makes a run
failed; clusters count it separately (``recovered_runs``, ``failed_steps``).

    >>> run = {"event_id": "r", "span_id": "a", "status": "error", "failure_class": "unknown"}
    >>> first = {"event_id": "s1", "span_id": "b", "parent_span_id": "a", "status": "error",
    ...          "start_ns": 1, "end_ns": 5}
    >>> retry = {"event_id": "s2", "span_id": "c", "parent_span_id": "a", "status": "error",
    ...          "start_ns": 6, "end_ns": 9}
    >>> root_cause(run, [first, retry])["event_id"]
    's2'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["root_cause"]

Row = Mapping[str, Any]


def _propagated(step: Row) -> tuple[int, int, str]:
    # min() of this key: the last to end, then the later start, then the smaller event_id.
    return (-step["end_ns"], -step["start_ns"], step["event_id"])


def root_cause(run: Row, steps: Sequence[Row]) -> Row:
    """The event a failed ``run`` is attributed to: one of ``steps`` (its children) or the run.

    ``run`` and ``steps`` are stored rows (``event_id``, ``span_id``, ``parent_span_id``,
    ``status``, ``start_ns``, ``end_ns``). Only meaningful for a failed run; a run that ended
    ok is returned as is.
    """
    if run["status"] != "error":
        return run
    failed = [s for s in steps if s["status"] == "error"]
    if not failed:
        return run
    known = {s["span_id"] for s in steps}
    known.discard(run["span_id"])
    children: dict[str | None, list[Row]] = {}
    for s in failed:
        parent = s.get("parent_span_id")
        key = parent if parent in known and parent != s["span_id"] else None
        children.setdefault(key, []).append(s)
    level = children.get(None, [])
    if not level:
        return run  # every failed step sits below a step that ended ok: recovered inside the run
    node: Row = min(level, key=_propagated)
    seen = {node["span_id"]}
    while True:
        below = [s for s in children.get(node["span_id"], ()) if s["span_id"] not in seen]
        if not below:
            return node
        node = min(below, key=_propagated)
        seen.add(node["span_id"])
