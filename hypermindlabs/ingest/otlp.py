"""OTLP trace ingest (``POST /v1/traces``, docs/otlp.md). One export in: decoded spans → mapped
events → the same validation and append as ``POST /api/v1/events`` → the OTLP trace state → the
root-timeout sweep.

Order of writes: the events go in one append transaction (whole or not at all, idempotent by
span-derived event ids); the trace state follows in a second short transaction. If that second
one fails the export is answered as retryable, and the retry finds its events as duplicates and
writes the state — so a crash between the two loses nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hypermindlabs import conventions as c
from hypermindlabs.config import Settings
from hypermindlabs.ingest.bodies import ingest_objects
from hypermindlabs.ingest.otlp_decode import OtlpBodyError, SpanRecord, decode_request, decompress
from hypermindlabs.ingest.otlp_mapping import AttributeKeys, SpanRejection, TraceState, map_spans
from hypermindlabs.ingest.otlp_synth import synthesize_run
from hypermindlabs.store import EventStore

__all__ = [
    "ExportResult", "OtlpBodyError", "SWEEP_BATCH", "attribute_keys", "decode_request", "decompress", "ingest_spans",
    "sweep",
]  # fmt: skip

log = logging.getLogger(__name__)
SWEEP_BATCH = 200  # traces closed per sweep call at ingest; the CLI loops until none is due
_MESSAGE_LIMIT = 20


def attribute_keys(settings: Settings) -> AttributeKeys:
    """The project/scenario/tag attribute keys configured in ``settings``."""
    return AttributeKeys.parse(settings.otlp_project_keys, settings.otlp_scenario_keys, settings.otlp_tag_keys)


@dataclass
class ExportResult:
    spans: int = 0
    accepted_events: int = 0
    duplicate_events: int = 0
    rejected: list[SpanRejection] = field(default_factory=list)
    synthesized: int = 0

    @property
    def rejected_spans(self) -> int:
        return len(self.rejected)

    def message(self) -> str:
        """The partial-success ``error_message``: each rejected span with the field and the reason."""
        parts = [
            f"span {r.span.span_id or '?'} ({r.span.name[:64]!r}) of trace {r.span.trace_id or '?'}: "
            f"{r.field}: {r.error}"
            for r in self.rejected[:_MESSAGE_LIMIT]
        ]
        if len(self.rejected) > _MESSAGE_LIMIT:
            parts.append(f"… and {len(self.rejected) - _MESSAGE_LIMIT} more")
        return "; ".join(parts)


def ingest_spans(
    store: EventStore, spans: list[SpanRecord], keys: AttributeKeys, *, now_ns: int, root_timeout_s: int
) -> ExportResult:
    """Store one export's spans; then close the traces whose root timed out (:func:`sweep`)."""
    result = ExportResult(spans=len(spans))
    own = [s for s in spans if s.scope_name == c.TRACER_NAME]
    if own:
        # hypermind-obs's own spans (OTEL_EXPORTER_OTLP_ENDPOINT pointed at itself) would count twice.
        result.rejected.extend(
            SpanRejection(s, "scope.name", f"spans of hypermind-obs's own tracer {c.TRACER_NAME!r} are not ingested")
            for s in own
        )
        spans = [s for s in spans if s.scope_name != c.TRACER_NAME]
    trace_ids = list(dict.fromkeys(s.trace_id for s in spans))
    traces = store.otlp_traces()
    with_root = list(dict.fromkeys(s.trace_id for s in spans if not s.parent_span_id or s.parent_is_remote))
    seen = traces.context(trace_ids, with_root)
    known = {t: TraceState(*v) for t, v in seen.states.items()}
    batch = map_spans(spans, known, keys, seen.held, seen.models)
    result.rejected.extend(batch.rejected)

    objs: list[dict[str, Any]] = []
    owner: list[int] = []  # object index → mapped span index
    for i, m in enumerate(batch.mapped):
        objs.extend(m.objects)
        owner.extend([i] * len(m.objects))
    appended = ingest_objects(store, objs) if objs else None
    bad: dict[int, tuple[str, str]] = {}
    if appended is not None:
        result.accepted_events, result.duplicate_events = appended.accepted, appended.duplicates
        for r in appended.rejected:
            bad.setdefault(owner[r.index], (r.field, r.error))
    for i, (fld, err) in sorted(bad.items()):
        result.rejected.append(SpanRejection(batch.mapped[i].span, fld, err))

    stored_roots = {m.span.trace_id for i, m in enumerate(batch.mapped) if m.is_root and i not in bad}
    opened: dict[str, tuple[str, dict[str, Any]]] = {}
    closed: dict[str, tuple[str, dict[str, Any]]] = {}
    for trace_id, run_id in batch.run_ids.items():
        entry = (run_id, batch.templates[trace_id])
        if trace_id in stored_roots:
            closed[trace_id] = entry
        elif trace_id not in known or known[trace_id].state == "open":
            opened[trace_id] = entry
    held_now = [(h.trace_id, h.span_id, h.run_id, h.summary) for h in batch.held if h.trace_id not in closed]
    traces.record(now_ns, opened, closed, held_now)
    result.synthesized = sweep(store, now_ns=now_ns, root_timeout_s=root_timeout_s, limit=SWEEP_BATCH)
    return result


def sweep(store: EventStore, *, now_ns: int, root_timeout_s: int, limit: int = SWEEP_BATCH) -> int:
    """Close every open trace whose last span arrived more than ``root_timeout_s`` ago: its run event
    is synthesised from the stored children (:func:`synthesize_run`) and appended like any other.

    Returns the number of runs synthesised. Idempotent: the synthesised event id is fixed per trace.
    """
    cutoff = now_ns - root_timeout_s * 1_000_000_000
    traces = store.otlp_traces()
    due = traces.due(cutoff, limit)
    made = 0
    for trace_id, run_id, template in due:
        run = store.get_run(run_id)
        if run is not None and run["complete"]:
            # The run event arrived by another door (the JSON API, another process): nothing to make.
            traces.finish(trace_id, "closed")
            continue
        held = traces.held(trace_id)
        children = run["events"] if run is not None else []
        obj = synthesize_run(trace_id, run_id, children, template, held, root_timeout_s)
        state = "synthesized"
        if obj is None:
            state = "closed"  # every span was rejected: there is nothing to show
        else:
            res = ingest_objects(store, [obj])
            if res.rejected:
                log.warning("otlp sweep: synthesised run %s rejected: %s", run_id, res.rejected[0].error)
                state = "closed"
            else:
                made += res.accepted
        traces.finish(trace_id, state)
    return made
