"""From raw client input to stored events: body splitting, per-event validation, one append.

Shared by ``POST /api/v1/events``, ``hypermind-obs ingest`` and the demo loader, so every
entry point validates, inherits and deduplicates the same way.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import orjson

from hypermindlabs.core.events import EventValidationError, RunEvent, parse_event
from hypermindlabs.store import AppendResult, EventStore, Rejection

__all__ = ["BodyError", "split_body", "ingest_objects", "iter_file_batches", "collector_paused"]


class BodyError(ValueError):
    """The request body as a whole is unreadable (malformed JSON, wrong shape)."""


def split_body(body: bytes, content_type: str = "") -> list[Any]:
    """A JSON array, a single JSON object, or NDJSON → a list of values (one per event).

    NDJSON lines that do not parse become :class:`_Malformed` entries, reported per line.
    """
    text = body.strip()
    if not text:
        raise BodyError("empty body: send a JSON array, a JSON object or NDJSON lines")
    ndjson = "ndjson" in content_type or "jsonl" in content_type or "json-seq" in content_type
    if not ndjson:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            first = text.split(b"\n", 1)[0]
            if b"\n" in text and not isinstance(_parse_line(first, 1), _Malformed):
                ndjson = True  # NDJSON sent as application/json: one object per line
            else:
                raise BodyError(f"malformed JSON: {exc}") from exc
        else:
            if isinstance(value, list):
                return value
            if isinstance(value, dict):
                return [value]
            raise BodyError("expected a JSON array of events, a JSON object or NDJSON")
    return [_parse_line(line, n) for n, line in enumerate(text.split(b"\n"), 1) if line.strip()]


class _Malformed:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_line(line: bytes, lineno: int) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return _Malformed(f"line {lineno}: malformed JSON: {exc}")


def ingest_objects(store: EventStore, objs: Sequence[Any], *, offset: int = 0) -> AppendResult:
    """Validate every object, then store the valid ones in one transaction.

    Rejections carry the object's index in the client's batch (plus ``offset``).
    """
    with collector_paused():
        valid: list[RunEvent] = []
        positions: list[int] = []
        rejected: list[Rejection] = []
        for i, obj in enumerate(objs):
            if isinstance(obj, _Malformed):
                rejected.append(Rejection(i + offset, "$", obj.reason))
                continue
            try:
                valid.append(parse_event(obj))
            except EventValidationError as exc:
                rejected.append(Rejection(i + offset, exc.field, exc.reason))
                continue
            positions.append(i + offset)
        # The store fills children's dimensions from their run (in this batch or stored).
        result = store.append(valid, indexes=positions) if valid else AppendResult()
    result.rejected = sorted(rejected + result.rejected, key=lambda r: r.index)
    return result


_PAUSE_LOCK = threading.Lock()
_paused = 0  # batches in flight with the collector paused (one process-wide collector: one count)
_thread = threading.local()  # this thread's nesting depth (a door pauses around body and batch)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run a batch with CPython's cyclic garbage collector paused, and let it run after.

    A 5,000-event batch allocates hundreds of thousands of short-lived containers (decoded objects,
    rows, rollup and series deltas) that reference counting frees; none is part of a cycle. Yet every
    700 allocations the collector walks the young objects, and its older passes walk ever more of
    the heap: about a fifth of a batch's CPU time (bench/ingest.py, docs/performance.md § Ingest).
    Paused while any batch of this process is in flight (threads of one server share the
    collector), resumed when the last one ends (a batch ending while others are in flight runs one
    young-generation pass itself). Re-entrant in one thread (the HTTP door pauses around decoding
    the body and :func:`ingest_objects` inside it). Nothing changes when the collector was off.
    """
    global _paused
    depth = getattr(_thread, "depth", 0)
    if depth:
        _thread.depth = depth + 1
        try:
            yield
        finally:
            _thread.depth = depth
        return
    with _PAUSE_LOCK:
        owner = _paused > 0 or gc.isenabled()
        if owner:
            _paused += 1
            gc.disable()
    _thread.depth = 1
    try:
        yield
    finally:
        _thread.depth = 0
        if owner:
            with _PAUSE_LOCK:
                _paused -= 1
                last = _paused == 0
                if last:
                    gc.enable()
            if not last:
                # Other batches keep it paused: collect this one's cycles (if any) now, so threads
                # that always overlap never pause it for good.
                gc.collect(0)


def iter_file_batches(fh: IO[bytes], *, batch_size: int = 5000) -> Iterator[tuple[list[Any], int]]:
    """Read a JSON array/object file or an NDJSON file in batches: yields (objects, bytes read).

    NDJSON is streamed line by line, so files larger than memory ingest fine; a JSON array is
    loaded whole (it cannot be split safely without a streaming parser).
    """
    head = fh.read(1)
    while head in (b" ", b"\n", b"\r", b"\t"):
        head = fh.read(1)
    if head == b"[":
        body = head + fh.read()
        objs = split_body(body)
        for i in range(0, len(objs), batch_size):
            yield objs[i : i + batch_size], len(body) if i + batch_size >= len(objs) else 0
        return
    first = head + fh.readline()
    if head == b"{" and isinstance(_parse_line(first, 1), _Malformed):
        # Not NDJSON: one (pretty-printed) JSON object.
        body = first + fh.read()
        yield split_body(body), len(body)
        return
    batch: list[Any] = []
    read = 0
    lineno = 0
    for line in _chain([first], fh):
        lineno += 1
        read += len(line)
        if line.strip():
            batch.append(_parse_line(line, lineno))
        if len(batch) >= batch_size:
            yield batch, read
            batch, read = [], 0
    if batch or read:
        yield batch, read


def _chain(first: Iterable[bytes], rest: Iterable[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest
