"""SQL for the OTLP ingest state (tables ``otlp_traces`` and ``otlp_held_spans``, migration 0004).

Plain values in and out (no OTLP types), so it can sit with the store, which imports nothing above it.

Every statement here runs on the store's engine, in its own short transaction after the event append;
:class:`OtlpTraces` (``EventStore.otlp_traces()``) is what the OTLP ingest (``hypermindlabs.ingest.otlp``)
calls, so no layer above the store opens a transaction itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from hypermindlabs.core.vocabulary import chunks
from hypermindlabs.store.schema import events, otlp_held_spans, otlp_traces

__all__ = [
    "OtlpTraces", "TraceContext", "load_states", "load_held", "step_models", "record", "due", "mark", "release_held",
]  # fmt: skip


class TraceContext:
    """What an export's mapping needs to know of its traces already seen."""

    __slots__ = ("states", "held", "models")

    def __init__(
        self,
        states: dict[str, tuple[str, str]],
        held: dict[str, list[dict[str, Any]]],
        models: dict[str, set[str]],
    ) -> None:
        self.states = states  # trace id → (run id, state)
        self.held = held  # trace id → summaries of the spans held for its run (traces with a root here)
        self.models = models  # run id → models of its stored llm steps (traces with a root here)


class OtlpTraces:
    """The OTLP trace state on the store's engine; each method is its own short transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def context(self, trace_ids: Sequence[str], with_root: Sequence[str]) -> TraceContext:
        """The states of ``trace_ids``; for the traces in ``with_root`` (whose root span is in this
        export) also their held spans and the models of their runs' stored llm steps."""
        with self._engine.connect() as conn:
            states = load_states(conn, trace_ids)
            held = load_held(conn, with_root) if with_root else {}
            run_ids = [states[t][0] for t in with_root if t in states]
            models = step_models(conn, run_ids) if run_ids else {}
        return TraceContext(states, held, models)

    def record(
        self,
        now_ns: int,
        opened: Mapping[str, tuple[str, dict[str, Any]]],
        closed: Mapping[str, tuple[str, dict[str, Any]]],
        held: Sequence[tuple[str, str, str, dict[str, Any]]],
    ) -> None:
        """:func:`record` in one transaction."""
        with self._engine.begin() as conn:
            record(conn, now_ns, opened, closed, held)

    def due(self, cutoff_ns: int, limit: int) -> list[tuple[str, str, dict[str, Any]]]:
        """:func:`due`: open traces whose last span arrived before ``cutoff_ns``."""
        with self._engine.connect() as conn:
            return due(conn, cutoff_ns, limit)

    def held(self, trace_id: str) -> list[dict[str, Any]]:
        """The summaries of the spans held for ``trace_id``'s run."""
        with self._engine.connect() as conn:
            return load_held(conn, [trace_id]).get(trace_id, [])

    def finish(self, trace_id: str, state: str) -> None:
        """Mark ``trace_id`` closed or synthesised and drop its held spans, in one transaction."""
        with self._engine.begin() as conn:
            mark(conn, trace_id, state)
            release_held(conn, [trace_id])


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def load_states(conn: Connection, trace_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """trace id → (run id, state) for the traces already seen."""
    out: dict[str, tuple[str, str]] = {}
    for chunk in chunks(list(trace_ids)):
        q = select(otlp_traces.c.trace_id, otlp_traces.c.run_id, otlp_traces.c.state).where(
            otlp_traces.c.trace_id.in_(chunk)
        )
        out.update({r.trace_id: (r.run_id, r.state) for r in conn.execute(q)})
    return out


def load_held(conn: Connection, trace_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for chunk in chunks(list(trace_ids)):
        q = select(otlp_held_spans.c.trace_id, otlp_held_spans.c.summary).where(otlp_held_spans.c.trace_id.in_(chunk))
        for r in conn.execute(q):
            out.setdefault(r.trace_id, []).append(orjson.loads(r.summary))
    return out


def step_models(conn: Connection, run_ids: Sequence[str]) -> dict[str, set[str]]:
    """Models of the llm steps already stored for these runs (a run without its own model takes the one)."""
    out: dict[str, set[str]] = {}
    for chunk in chunks(list(run_ids)):
        q = (
            select(events.c.run_id, events.c.model)
            .distinct()
            .where(events.c.run_id.in_(chunk), events.c.kind == "llm", events.c.model.is_not(None))
        )
        for r in conn.execute(q):
            out.setdefault(r.run_id, set()).add(r.model)
    return out


def record(
    conn: Connection,
    now_ns: int,
    opened: Mapping[str, tuple[str, dict[str, Any]]],
    closed: Mapping[str, tuple[str, dict[str, Any]]],
    held: Sequence[tuple[str, str, str, dict[str, Any]]],
) -> None:
    """Traces still waiting for their root (``last_seen`` moves on), traces whose run is now stored,
    and the unmapped spans to keep until their run is written: (trace id, span id, run id, summary)."""
    # One statement per kind of change, executed for all the export's traces at once.
    for state, entries in (("open", opened), ("closed", closed)):
        if not entries:
            continue
        stmt = _insert(conn, otlp_traces)
        stmt = stmt.on_conflict_do_update(
            index_elements=["trace_id"],
            set_={"last_seen_ns": stmt.excluded.last_seen_ns, "state": stmt.excluded.state},
            where=otlp_traces.c.state == "open",  # a closed or synthesised trace stays so
        )
        conn.execute(stmt, [
            {"trace_id": t, "run_id": run_id, "state": state, "first_seen_ns": now_ns, "last_seen_ns": now_ns,
             "template": orjson.dumps(template).decode()}
            for t, (run_id, template) in entries.items()
        ])  # fmt: skip
    release_held(conn, list(closed))
    if held:
        rows = [
            {"trace_id": t, "span_id": sp, "run_id": r, "received_ns": now_ns, "summary": orjson.dumps(h).decode()}
            for t, sp, r, h in held
        ]  # fmt: skip
        conn.execute(_insert(conn, otlp_held_spans).on_conflict_do_nothing(), rows)


def release_held(conn: Connection, trace_ids: Sequence[str]) -> None:
    for chunk in chunks(list(trace_ids)):
        conn.execute(delete(otlp_held_spans).where(otlp_held_spans.c.trace_id.in_(chunk)))


def due(conn: Connection, cutoff_ns: int, limit: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Open traces whose last span arrived before ``cutoff_ns``: (trace id, run id, template)."""
    q = (
        select(otlp_traces.c.trace_id, otlp_traces.c.run_id, otlp_traces.c.template)
        .where(otlp_traces.c.state == "open", otlp_traces.c.last_seen_ns < cutoff_ns)
        .order_by(otlp_traces.c.last_seen_ns)
        .limit(limit)
    )
    return [(r.trace_id, r.run_id, orjson.loads(r.template)) for r in conn.execute(q)]


def mark(conn: Connection, trace_id: str, state: str) -> None:
    conn.execute(update(otlp_traces).where(otlp_traces.c.trace_id == trace_id).values(state=state))
