"""GenAI / OpenInference / OpenLLMetry spans → run events (docs/otlp.md is the field-by-field table).

Pure: no I/O, no clock. The caller resolves, per trace, what the store already knows (the run id
the trace was first stored under, whether its run is closed) and passes it in as
:class:`TraceState`; :func:`map_spans` returns event objects in the contract shape of
``POST /api/v1/events`` (they go through the same validation and append), the spans that fit no
kind (kept as attributes of their run), and the spans rejected before validation.

Ids: one span → one event whose ``event_id`` is ``otlp-<trace_id>-<span_id>``, so a retried export
stores nothing twice. A root span that is itself a model or tool call also yields its step
(``…-step``, a derived span id whose parent is the root).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hypermindlabs.conventions import ATTR_PROVIDER
from hypermindlabs.ingest.otlp_decode import SpanRecord

__all__ = [
    "AttributeKeys",
    "TraceState",
    "MappedSpan",
    "MappedBatch",
    "HeldSpan",
    "SpanRejection",
    "classify",
    "map_spans",
    "run_event_id",
    "held_summary",
    "bounded_attributes",
]

_NS_MIN = 946_684_800 * 10**9  # 2000-01-01
_NS_MAX = 4_102_444_800 * 10**9  # 2100-01-01
STATUS_ERROR = 2
# Budgets under the contract's 64 KiB attributes limit: content-capturing instrumentations put
# whole prompts in attributes; they are cut, not allowed to get the span rejected.
ATTRIBUTES_BUDGET = 48_000
HELD_BUDGET = 24_000
MAX_STRING = 2_000
MAX_HELD_STRING = 256
MAX_TAG_VALUE = 256
MAX_NAME = 512

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})
RETRIEVAL_OPERATIONS = frozenset({"embeddings", "embedding", "retrieval", "rerank"})
AGENT_OPERATIONS = frozenset({"invoke_agent", "invoke_workflow"})
POLICY_OPERATIONS = frozenset({"apply_guardrail", "guardrail"})
OPENINFERENCE_KINDS = {
    "LLM": "llm", "EMBEDDING": "retrieval", "RETRIEVER": "retrieval", "RERANKER": "retrieval",
    "TOOL": "tool", "AGENT": "agent", "CHAIN": "chain", "GUARDRAIL": "policy",
}  # fmt: skip
TRACELOOP_KINDS = {"workflow": "agent", "agent": "agent", "tool": "tool"}
TRACELOOP_REQUEST_TYPES = {"chat": "llm", "completion": "llm", "embedding": "retrieval", "rerank": "retrieval"}
STEP_KINDS = frozenset({"llm", "tool", "retrieval", "policy"})

PROVIDER_KEYS = (ATTR_PROVIDER, "gen_ai.system", "llm.provider", "llm.system")
MODEL_KEYS = ("gen_ai.request.model", "llm.model_name", "gen_ai.response.model")
INPUT_TOKEN_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKEN_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
TOOL_KEYS = ("gen_ai.tool.name", "tool.name", "traceloop.entity.name")
RUN_ID_KEY = "hypermind.run_id"
TAG_PREFIXES = ("hypermind.tag.", "traceloop.association.properties.")


@dataclass(frozen=True)
class AttributeKeys:
    """Which attributes give project, scenario and tags (from ``Settings``; span first, then resource)."""

    project: tuple[str, ...] = ("hypermind.project", "service.name")
    scenario: tuple[str, ...] = ("hypermind.scenario",)
    tags: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("env", ("deployment.environment.name", "deployment.environment")),
        ("release", ("service.version",)),
        ("session", ("session.id", "gen_ai.conversation.id")),
    )

    @classmethod
    def parse(cls, project: str, scenario: str, tags: str) -> AttributeKeys:
        """``"a,b"``, ``"a"`` and ``"env=k1|k2,release=k3"`` as given in the settings.

        >>> AttributeKeys.parse("p", "s", "env=a|b").tags
        (('env', ('a', 'b')),)
        """
        pairs = []
        for item in filter(None, (x.strip() for x in tags.split(","))):
            tag, sep, keys = item.partition("=")
            if not sep or not tag.strip() or not keys.strip():
                raise ValueError(f"tag mapping {item!r}: expected tag=attribute.key|fallback.key")
            pairs.append((tag.strip(), tuple(k.strip() for k in keys.split("|") if k.strip())))
        split = lambda s: tuple(k.strip() for k in s.split(",") if k.strip())  # noqa: E731
        return cls(project=split(project), scenario=split(scenario), tags=tuple(pairs))


@dataclass(frozen=True)
class TraceState:
    """What the store knows of a trace: the run id it is stored under and its state."""

    run_id: str
    state: str  # "open" (children stored, no run event yet) | "closed" | "synthesized"


@dataclass(frozen=True)
class SpanRejection:
    span: SpanRecord
    field: str
    error: str


@dataclass(frozen=True)
class HeldSpan:
    """A span that fits no kind, kept (summarised) in its run event's ``hypermind.spans`` attribute."""

    trace_id: str
    span_id: str
    run_id: str
    summary: dict[str, Any]


@dataclass(frozen=True)
class MappedSpan:
    """The event objects one span became (one, or two for a root that is also a step)."""

    span: SpanRecord
    objects: list[dict[str, Any]]
    is_root: bool


@dataclass
class MappedBatch:
    mapped: list[MappedSpan] = field(default_factory=list)
    held: list[HeldSpan] = field(default_factory=list)
    rejected: list[SpanRejection] = field(default_factory=list)
    # trace_id → run id chosen, and the run-level template (project, scenario, tags) for the sweep.
    run_ids: dict[str, str] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_event_id(trace_id: str, span_id: str) -> str:
    return f"otlp-{trace_id}-{span_id}"


def _first(attrs: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


def _lookup(span: SpanRecord, keys: Iterable[str]) -> Any:
    v = _first(span.attributes, keys)
    return v if v is not None else _first(span.resource, keys)


def classify(span: SpanRecord) -> str | None:
    """The role of a span: llm, tool, retrieval, policy, agent, chain or None (fits no kind).

    An explicit ``hypermind.kind`` wins; then GenAI's ``gen_ai.operation.name``, OpenInference's
    ``openinference.span.kind``, OpenLLMetry's ``traceloop.span.kind`` and ``llm.request.type``.
    """
    a = span.attributes
    explicit = a.get("hypermind.kind")
    if explicit in STEP_KINDS or explicit == "agent":
        return str(explicit)
    op = a.get("gen_ai.operation.name")
    if isinstance(op, str):
        op = op.lower()
        if op in LLM_OPERATIONS:
            return "llm"
        if op in RETRIEVAL_OPERATIONS:
            return "retrieval"
        if op == "execute_tool":
            return "tool"
        if op in AGENT_OPERATIONS:
            return "agent"
        if op in POLICY_OPERATIONS:
            return "policy"
    oi = a.get("openinference.span.kind")
    if isinstance(oi, str) and oi.upper() in OPENINFERENCE_KINDS:
        return OPENINFERENCE_KINDS[oi.upper()]
    tl = a.get("traceloop.span.kind")
    if isinstance(tl, str) and tl.lower() in TRACELOOP_KINDS:
        return TRACELOOP_KINDS[tl.lower()]
    rt = a.get("llm.request.type")
    if isinstance(rt, str) and rt.lower() in TRACELOOP_REQUEST_TYPES:
        return TRACELOOP_REQUEST_TYPES[rt.lower()]
    return None


def _count(value: Any) -> Any:
    # Whole numbers sent as strings or floats count; anything else goes to validation as sent,
    # which rejects this span alone naming the usage field.
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


_CLASS_REPR = re.compile(r"<class '([^']+)'>")


def _error(span: SpanRecord) -> dict[str, Any] | None:
    exc = next((e for e in reversed(span.events) if e.name == "exception"), None)
    error_type = span.attributes.get("error.type")
    failed = span.status_code == STATUS_ERROR or (error_type not in (None, "", "_OTHER") and span.status_code != 1)
    if not failed:
        return None
    etype = None
    message = span.status_message or None
    if exc is not None:
        etype = exc.attributes.get("exception.type")
        message = exc.attributes.get("exception.message") or message
    etype = str(etype or error_type or "error")
    m = _CLASS_REPR.fullmatch(etype)  # some instrumentations record the exception class's repr
    etype = m.group(1) if m else etype
    return {"type": etype[:MAX_NAME], "message": str(message) if message is not None else None}


def _truncate(value: Any, limit: int) -> tuple[Any, bool]:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…", True
    if isinstance(value, list):
        out, cut = [], False
        for v in value:
            t, c = _truncate(v, limit)
            out.append(t)
            cut |= c
        return out, cut
    if isinstance(value, dict):
        out_d, cut = {}, False
        for k, v in value.items():
            t, c = _truncate(v, limit)
            out_d[k] = t
            cut |= c
        return out_d, cut
    return value, False


def _size(obj: Any) -> int:
    return len(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS))


def bounded_attributes(attrs: Mapping[str, Any], budget: int = ATTRIBUTES_BUDGET, limit: int = MAX_STRING) -> dict:
    """The attributes within ``budget`` bytes of JSON: long strings cut, then the largest values dropped.

    Whatever is cut or dropped is named in ``hypermind.truncated`` / ``hypermind.dropped``.
    """
    out = dict(attrs)
    if _size(out) <= budget:
        return out
    truncated = []
    for k, v in out.items():
        t, cut = _truncate(v, limit)
        if cut:
            out[k] = t
            truncated.append(k)
    if truncated:
        out["hypermind.truncated"] = sorted(truncated)
    dropped = []
    while _size(out) > budget and out:
        key = max((k for k in out if not k.startswith("hypermind.")), key=lambda k: _size(out[k]), default=None)
        if key is None:
            break
        del out[key]
        dropped.append(key)
    if dropped:
        out["hypermind.dropped"] = sorted(dropped)
    return out


def _tag_value(v: Any) -> str:
    s = v if isinstance(v, str) else orjson.dumps(v).decode()
    return s[:MAX_TAG_VALUE]


def _tags(span: SpanRecord, keys: AttributeKeys) -> dict[str, str]:
    tags: dict[str, str] = {}
    for source in (span.resource, span.attributes):  # span attributes override the resource's
        for k, v in source.items():
            for prefix in TAG_PREFIXES:
                if k.startswith(prefix) and len(k) > len(prefix) and v is not None:
                    tags[k[len(prefix) :][:64]] = _tag_value(v)
    for tag, attr_keys in keys.tags:
        v = _lookup(span, attr_keys)
        if v is not None:
            tags[tag] = _tag_value(v)
    return tags


def _dim(v: Any) -> Any:
    return v if v is None or isinstance(v, str) else orjson.dumps(v).decode()


def _template(span: SpanRecord, keys: AttributeKeys) -> dict[str, Any]:
    return {
        "project": _dim(_lookup(span, keys.project)),
        "scenario": _dim(_lookup(span, keys.scenario)),
        "tags": _tags(span, keys),
    }


def held_summary(span: SpanRecord) -> dict[str, Any]:
    """What is kept of a span that fits no kind: ids, name, times, status and cut attributes."""
    summary: dict[str, Any] = {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id or None,
        "name": span.name[:MAX_NAME],
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "status": "error" if span.status_code == STATUS_ERROR else "ok",
        "attributes": bounded_attributes(span.attributes, 4_000, MAX_HELD_STRING),
    }
    err = _error(span)
    if err:
        summary["error"] = err
    return summary


def fold_held(attrs: dict[str, Any], held: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Put unmapped-span summaries into a run's attributes, within the budget (the rest by id)."""
    if not held:
        return attrs
    kept: list[dict[str, Any]] = []
    used = _size(attrs)
    for h in sorted(held, key=lambda h: (h.get("start_time_unix_nano") or 0, h.get("span_id") or "")):
        s = _size(h)
        if used + s > ATTRIBUTES_BUDGET + HELD_BUDGET // 2:
            h = {k: h.get(k) for k in ("span_id", "parent_span_id", "name", "status")}
            s = _size(h)
        kept.append(h)
        used += s
    out = dict(attrs)
    out["hypermind.spans"] = kept
    while _size(out) > ATTRIBUTES_BUDGET + HELD_BUDGET and len(kept) > 1:
        # Last resort for traces with thousands of unmapped spans: keep the count, not each one.
        kept.pop()
        out["hypermind.spans_omitted"] = out.get("hypermind.spans_omitted", 0) + 1
    return out


def _invocation_model(a: Mapping[str, Any]) -> str | None:
    # OpenInference records the requested model only inside the invocation parameters JSON when the
    # call failed before a response named it.
    raw = a.get("llm.invocation_parameters")
    if not isinstance(raw, str) or '"model"' not in raw:
        return None
    try:
        model = orjson.loads(raw).get("model")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return model if isinstance(model, str) and model else None


def _derived_span_id(span_id: str) -> str:
    return hashlib.sha256(f"step:{span_id}".encode()).hexdigest()[:16]


def _check(span: SpanRecord) -> SpanRejection | None:
    if len(span.trace_id) != 32 or not span.trace_id.strip("0"):
        return SpanRejection(span, "trace_id", "expected a 16-byte (32 hex characters) non-zero trace id")
    if len(span.span_id) != 16 or not span.span_id.strip("0"):
        return SpanRejection(span, "span_id", "expected an 8-byte (16 hex characters) non-zero span id")
    if span.parent_span_id and len(span.parent_span_id) != 16:
        return SpanRejection(span, "parent_span_id", "expected an 8-byte (16 hex characters) span id")
    if not _NS_MIN <= span.start_time_unix_nano < _NS_MAX:
        return SpanRejection(span, "start_time_unix_nano", "outside the years 2000–2100 (Unix nanoseconds)")
    if not _NS_MIN <= span.end_time_unix_nano < _NS_MAX:
        return SpanRejection(span, "end_time_unix_nano", "outside the years 2000–2100 (Unix nanoseconds)")
    return None


def _is_root(span: SpanRecord) -> bool:
    return not span.parent_span_id or span.parent_is_remote


def _event(span: SpanRecord, run_id: str, kind: str, keys: AttributeKeys) -> dict[str, Any]:
    a = span.attributes
    obj: dict[str, Any] = {
        "event_id": run_event_id(span.trace_id, span.span_id),
        "run_id": run_id,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id or None,
        "kind": kind,
        "name": span.name[:MAX_NAME] or None,
        "start_time": span.start_time_unix_nano,
        "end_time": span.end_time_unix_nano,
    }
    if kind == "run":
        # Steps take project and scenario from their run (the store fills them in, also when the
        # run arrives later), so one run never shows two projects.
        obj["project"] = _dim(_lookup(span, keys.project))
        obj["scenario"] = _dim(_lookup(span, keys.scenario))
    err = _error(span)
    obj["status"] = "error" if err else "ok"
    if err:
        obj["error"] = err
    model = _dim(_first(a, MODEL_KEYS)) or _invocation_model(a)
    if model is not None:
        obj["model"] = model
    if kind == "tool":
        obj["tool"] = _dim(_first(a, TOOL_KEYS)) or span.name or None
    if kind in ("llm", "retrieval", "run"):
        usage = {}
        tin, tout = _first(a, INPUT_TOKEN_KEYS), _first(a, OUTPUT_TOKEN_KEYS)
        if tin is not None:
            usage["input_tokens"] = _count(tin)
        if tout is not None:
            usage["output_tokens"] = _count(tout)
        if usage:
            obj["usage"] = usage
    attrs = dict(a)
    provider = _first(a, PROVIDER_KEYS)
    if provider is not None:
        attrs[ATTR_PROVIDER] = provider
    if span.scope_name:
        attrs["otel.scope.name"] = span.scope_name
    if kind == "run":
        obj["tags"] = _tags(span, keys)
        attrs["otel.resource"] = span.resource
    obj["attributes"] = bounded_attributes(attrs)
    return obj


def map_spans(
    spans: Sequence[SpanRecord],
    known: Mapping[str, TraceState],
    keys: AttributeKeys,
    held_by_trace: Mapping[str, Sequence[dict[str, Any]]] | None = None,
    step_models: Mapping[str, set[str]] | None = None,
) -> MappedBatch:
    """Map one export's spans. ``known``: store state by trace id; ``held_by_trace``: unmapped-span
    summaries waiting for their run; ``step_models``: models already stored for a run's llm steps."""
    out = MappedBatch()
    valid: list[SpanRecord] = []
    for sp in spans:
        bad = _check(sp)
        if bad is not None:
            out.rejected.append(bad)
        else:
            valid.append(sp)
    by_trace: dict[str, list[SpanRecord]] = {}
    for sp in valid:
        by_trace.setdefault(sp.trace_id, []).append(sp)

    for trace_id, group in by_trace.items():
        state = known.get(trace_id)
        if state is not None:
            run_id = state.run_id
        else:
            roots = [s for s in group if _is_root(s)]
            ordered = roots + [s for s in group if not _is_root(s)]
            asked = next((s.attributes.get(RUN_ID_KEY) for s in ordered if s.attributes.get(RUN_ID_KEY)), None)
            asked = asked or group[0].resource.get(RUN_ID_KEY)
            run_id = asked if isinstance(asked, str) and asked.strip() else trace_id
        out.run_ids[trace_id] = run_id
        out.templates[trace_id] = _template(next((s for s in group if _is_root(s)), group[0]), keys)
        closed = state is not None and state.state in ("closed", "synthesized")

        roles = {s.span_id: classify(s) for s in group}
        root_objs: list[tuple[SpanRecord, dict[str, Any]]] = []
        unmapped: list[SpanRecord] = []
        models: set[str] = set(step_models.get(run_id, ())) if step_models else set()
        for sp in group:
            role = roles[sp.span_id]
            if _is_root(sp):
                if state is not None and state.state == "synthesized":
                    out.rejected.append(SpanRejection(
                        sp, "span_id",
                        f"root span arrived after run {run_id!r} was synthesised from its children "
                        "(root timeout passed); the synthesised run stands",
                    ))  # fmt: skip
                    continue
                run = _event(sp, run_id, "run", keys)
                objs = [run]
                if role in STEP_KINDS:
                    step = _event(sp, run_id, role, keys)
                    step["event_id"] += "-step"
                    step["span_id"] = _derived_span_id(sp.span_id)
                    step["parent_span_id"] = sp.span_id
                    step["attributes"] = {k: v for k, v in step["attributes"].items() if k != "otel.resource"}
                    run.pop("usage", None)  # tokens belong to the step; the run sums its steps
                    objs.append(step)
                    if step.get("model"):
                        models.add(step["model"])
                root_objs.append((sp, run))
                out.mapped.append(MappedSpan(sp, objs, True))
            elif role in STEP_KINDS:
                ev = _event(sp, run_id, role, keys)
                if role == "llm" and ev.get("model"):
                    models.add(ev["model"])
                out.mapped.append(MappedSpan(sp, [ev], False))
            else:
                unmapped.append(sp)

        held = [held_summary(s) for s in unmapped]
        if root_objs:
            earlier = list(held_by_trace.get(trace_id, ())) if held_by_trace else []
            for n, (_sp, run) in enumerate(root_objs):
                if not run.get("model") and len(models) == 1:
                    run["model"] = next(iter(models))  # the one model the run's steps used
                if n == 0:
                    run["attributes"] = fold_held(run["attributes"], earlier + held)
        elif closed:
            for s in unmapped:
                out.rejected.append(SpanRejection(
                    s, "span_id",
                    f"span fits no kind and arrived after run {run_id!r} was stored; it cannot be added to the run",
                ))  # fmt: skip
        else:
            out.held.extend(HeldSpan(s.trace_id, s.span_id, run_id, h) for s, h in zip(unmapped, held, strict=True))
    return out
