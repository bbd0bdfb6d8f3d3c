"""The in-process API for agent code: runs as context managers, steps timed automatically.

Recording never waits on the database: events go into a bounded in-memory buffer that a
background thread drains in batches. When the buffer is full, events are dropped and counted,
never raised into the agent. ``close()`` (also registered ``atexit``) flushes what is left.

>>> from hypermindlabs.sdk.run_manager import RunManager
>>> rm = RunManager(sink=lambda batch: None)
>>> with rm.run("answer-ticket", project="support", scenario="refund") as run:
...     with run.llm(model="gpt-4o") as step:
...         step.set_usage(input_tokens=812, output_tokens=97)
...     with run.tool("crm_lookup"):
...         pass
>>> rm.close()
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hypermindlabs.core.vocabulary import MAX_ERROR_MESSAGE_LEN
from hypermindlabs.store import EventStore

__all__ = ["RunManager", "Run", "Step", "RunManagerStats"]

log = logging.getLogger(__name__)

Sink = Callable[[list[dict[str, Any]]], Any]
_FLUSH = object()
_STOP = object()


def _hex(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


@dataclass
class RunManagerStats:
    recorded: int = 0
    written: int = 0
    dropped_buffer_full: int = 0
    dropped_invalid: int = 0
    dropped_sink_error: int = 0


class Step:
    """One timed step (llm, tool, retrieval, policy) of a run; use as a context manager."""

    __slots__ = ("_run", "kind", "name", "tool", "model", "span_id", "parent_span_id", "_start_ns",
                 "_usage", "_error", "_status", "_attributes", "_token", "_done")  # fmt: skip

    def __init__(self, run: Run, kind: str, name: str | None, tool: str | None, model: str | None,
                 attributes: Mapping[str, Any] | None) -> None:  # fmt: skip
        self._run = run
        self.kind = kind
        self.name = name
        self.tool = tool
        self.model = model
        self.span_id = _hex(8)
        self.parent_span_id = run._current_parent()
        self._start_ns = run._manager._clock()
        self._usage: dict[str, int] = {}
        self._error: dict[str, str] | None = None
        self._status: str | None = None
        self._attributes = dict(attributes) if attributes else None
        self._token: contextvars.Token[str | None] | None = None
        self._done = False

    def set_usage(self, *, input_tokens: int | None = None, output_tokens: int | None = None,
                  input_chars: int | None = None, output_chars: int | None = None) -> None:  # fmt: skip
        """Token counts, or text sizes when the provider reports none (a proxy is derived)."""
        for key, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                           ("input_chars", input_chars), ("output_chars", output_chars)):  # fmt: skip
            if value is not None:
                self._usage[key] = value

    def set_error(self, error: BaseException | str, *, error_class: str | None = None) -> None:
        self._error = _error_dict(error, error_class)
        self._status = "error"

    def set_attribute(self, key: str, value: Any) -> None:
        if self._attributes is None:
            self._attributes = {}
        self._attributes[key] = value

    def __enter__(self) -> Step:
        self._token = self._run._parent.set(self.span_id)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._token is not None:
            try:
                self._run._parent.reset(self._token)
            except ValueError:  # exited in another context than entered; keep going
                pass
        if exc is not None and self._error is None:
            self.set_error(exc)
        self.end()

    def end(self) -> None:
        if self._done:
            return
        self._done = True
        self._run._finish_step(self)


class Run:
    """One agent execution. Its ``run`` event (the outcome) is emitted when it ends."""

    def __init__(self, manager: RunManager, name: str | None, run_id: str | None, dims: dict[str, str | None],
                 tags: Mapping[str, str] | None) -> None:  # fmt: skip
        self._manager = manager
        self.name = name
        self.run_id = run_id or f"run_{_hex(12)}"
        self.trace_id = _hex(16)
        self.span_id = _hex(8)
        self.project = dims.get("project")
        self.model = dims.get("model")
        self.scenario = dims.get("scenario")
        self.tags = dict(tags or {})
        self._start_ns = manager._clock()
        self._parent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"parent_{self.span_id}", default=None
        )
        self._lock = threading.Lock()
        self._input_tokens = 0
        self._output_tokens = 0
        self._input_chars = 0
        self._output_chars = 0
        self._tokens_seen = False
        self._chars_only = False
        self._tool_calls = 0
        self._steps = 0
        self._error: dict[str, str] | None = None
        self._status: str | None = None
        self._attributes: dict[str, Any] = {}
        self._done = False

    # -- steps -----------------------------------------------------------------------------
    def llm(self, name: str | None = None, *, model: str | None = None,
            attributes: Mapping[str, Any] | None = None) -> Step:  # fmt: skip
        return Step(
            self, "llm", name or f"chat {model or self.model or ''}".strip(), None, model or self.model, attributes
        )

    def tool(self, tool: str, name: str | None = None, *, attributes: Mapping[str, Any] | None = None) -> Step:
        return Step(self, "tool", name or f"execute_tool {tool}", tool, None, attributes)

    def retrieval(self, name: str | None = None, *, tool: str | None = None,
                  attributes: Mapping[str, Any] | None = None) -> Step:  # fmt: skip
        return Step(self, "retrieval", name or "retrieval", tool, None, attributes)

    def policy(self, name: str | None = None, *, tool: str | None = None,
               attributes: Mapping[str, Any] | None = None) -> Step:  # fmt: skip
        return Step(self, "policy", name or "guardrail", tool, None, attributes)

    def fail(self, error: BaseException | str, *, error_class: str | None = None) -> None:
        """Mark the run failed without raising (e.g. the agent gave up gracefully)."""
        self._error = _error_dict(error, error_class)
        self._status = "error"

    def set_attribute(self, key: str, value: Any) -> None:
        self._attributes[key] = value

    def _current_parent(self) -> str:
        return self._parent.get() or self.span_id

    def _finish_step(self, step: Step) -> None:
        end_ns = self._manager._clock()
        usage = step._usage
        with self._lock:
            self._steps += 1
            if step.kind == "tool":
                self._tool_calls += 1
            if step.kind == "llm":
                if "input_tokens" in usage or "output_tokens" in usage:
                    self._tokens_seen = True
                self._input_tokens += usage.get("input_tokens", 0)
                self._output_tokens += usage.get("output_tokens", 0)
                self._input_chars += usage.get("input_chars", 0)
                self._output_chars += usage.get("output_chars", 0)
        ev: dict[str, Any] = {
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "span_id": step.span_id,
            "parent_span_id": step.parent_span_id,
            "kind": step.kind,
            "name": step.name,
            "start_time": step._start_ns,
            "end_time": max(end_ns, step._start_ns),
            "status": step._status or "ok",
            "project": self.project,
            "scenario": self.scenario,
            "model": step.model,
            "tool": step.tool,
        }
        if usage:
            ev["usage"] = usage
        if step._error is not None:
            ev["error"] = step._error
        if step._attributes:
            ev["attributes"] = step._attributes
        self._manager._emit(ev)

    # -- the run ---------------------------------------------------------------------------
    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and self._error is None:
            self.fail(exc)
        self.end()

    def end(self) -> None:
        if self._done:
            return
        self._done = True
        end_ns = self._manager._clock()
        usage: dict[str, int] = {}
        if self._tokens_seen:
            usage = {"input_tokens": self._input_tokens, "output_tokens": self._output_tokens}
        elif self._input_chars or self._output_chars:
            usage = {"input_chars": self._input_chars, "output_chars": self._output_chars}
        ev: dict[str, Any] = {
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "kind": "run",
            "name": self.name,
            "start_time": self._start_ns,
            "end_time": max(end_ns, self._start_ns),
            "status": self._status or "ok",
            "project": self.project,
            "model": self.model,
            "scenario": self.scenario,
            "attributes": {**self._attributes, "tool_calls": self._tool_calls, "steps": self._steps},
        }
        if self.tags:
            ev["tags"] = self.tags
        if usage:
            ev["usage"] = usage
        if self._error is not None:
            ev["error"] = self._error
        self._manager._emit(ev)


def _error_dict(error: BaseException | str, error_class: str | None) -> dict[str, str]:
    if isinstance(error, BaseException):
        d = {"type": type(error).__name__, "message": str(error)[:MAX_ERROR_MESSAGE_LEN]}
    else:
        d = {"type": "Error", "message": str(error)[:MAX_ERROR_MESSAGE_LEN]}
    if error_class:
        d["class"] = error_class
    return d


class RunManager:
    """Creates runs and ships their events to a sink in the background.

    ``store`` is an :class:`EventStore` built by the composition root (events are validated and
    appended in batches through the ingest door, so they are classified, rolled up and exported
    like any other): ``RunManager(build_pipeline(settings).store)``. ``sink`` is any callable
    taking a list of event dicts instead (an HTTP poster, a test collector…).
    """

    def __init__(
        self,
        store: EventStore | None = None,
        *,
        sink: Sink | None = None,
        project: str | None = None,
        model: str | None = None,
        scenario: str | None = None,
        tags: Mapping[str, str] | None = None,
        max_buffer: int = 10_000,
        batch_size: int = 1_000,
        flush_interval_s: float = 0.2,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if (store is None) == (sink is None):
            raise ValueError("RunManager needs exactly one of store= or sink=")
        self._sink: Sink = _store_sink(store) if store is not None else sink  # type: ignore[assignment]
        self._defaults = {"project": project, "model": model, "scenario": scenario}
        self._tags = dict(tags or {})
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_buffer)
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._clock = clock
        self.stats = RunManagerStats()
        self._stats_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="hypermind-run-writer", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        atexit.register(_close_at_exit, ref)

    def run(self, name: str | None = None, *, run_id: str | None = None, project: str | None = None,
            model: str | None = None, scenario: str | None = None,
            tags: Mapping[str, str] | None = None) -> Run:  # fmt: skip
        dims = {
            "project": project or self._defaults["project"],
            "model": model or self._defaults["model"],
            "scenario": scenario or self._defaults["scenario"],
        }
        return Run(self, name, run_id, dims, {**self._tags, **(tags or {})})

    def _emit(self, ev: dict[str, Any]) -> None:
        # The agent's hot path: never blocks, never raises.
        with self._stats_lock:
            self.stats.recorded += 1
        if self._closed:
            self._count_drop("dropped_buffer_full")
            return
        try:
            self._queue.put_nowait(ev)
        except queue.Full:
            self._count_drop("dropped_buffer_full")

    def _count_drop(self, what: str, n: int = 1) -> None:
        with self._stats_lock:
            setattr(self.stats, what, getattr(self.stats, what) + n)

    def _drain(self) -> None:
        stop = False
        while not stop:
            batch: list[dict[str, Any]] = []
            waiters: list[threading.Event] = []
            try:
                item = self._queue.get(timeout=self._interval)
            except queue.Empty:
                continue
            deadline = time.monotonic() + self._interval
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                if stop or waiters or len(batch) >= self._batch_size:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            for w in waiters:
                w.set()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            result = self._sink(batch)
        except Exception:  # noqa: BLE001 - the agent must never see the store's failures
            log.exception("hypermind: could not write %d run events; dropped", len(batch))
            self._count_drop("dropped_sink_error", len(batch))
            return
        invalid = len(getattr(result, "rejected", ()) or ())
        if invalid:
            log.warning("hypermind: %d run events were invalid and dropped: %s", invalid, result.rejected[:3])
            self._count_drop("dropped_invalid", invalid)
        with self._stats_lock:
            self.stats.written += len(batch) - invalid

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything recorded so far is written; False on timeout."""
        if not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def __enter__(self) -> RunManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_at_exit(ref: weakref.ref[RunManager]) -> None:
    manager = ref()
    if manager is not None:
        manager.close()


def _store_sink(store: EventStore) -> Sink:
    from hypermindlabs.ingest import ingest_objects

    return lambda batch: ingest_objects(store, batch)
