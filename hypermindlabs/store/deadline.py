"""Read deadlines: while one is open, every statement is cut by the database when it runs out.

A GET request (the web app opens one per request) and :meth:`EventStore.read` open a deadline;
each statement then gets what is left of it, and the database itself cancels a statement that
runs past it — on PostgreSQL even after the client has gone (200 tag filters once kept a backend
planning for minutes, and nine such requests starved ``/healthz``). How each database is told is
in :func:`hypermindlabs.store.dialect.install_read_deadlines`. Statements outside a deadline
(ingest, migrations, rebuilds) run as before, unbounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["ReadTimeout", "read_deadline", "begin_deadline", "end_deadline", "current", "remaining_ms"]

# (monotonic deadline in seconds, the budget in ms for messages); None: no deadline.
_deadline: ContextVar[tuple[float, int] | None] = ContextVar("hypermind_read_deadline", default=None)


class ReadTimeout(Exception):
    """A read ran past its deadline and the database cancelled it; the API answers 503."""

    def __init__(self, budget_ms: int) -> None:
        super().__init__(
            f"the query ran past the {budget_ms} ms read timeout (HYPERMIND_QUERY_TIMEOUT_MS) and was cancelled; "
            "narrow the window or the filters"
        )
        self.budget_ms = budget_ms


def begin_deadline(budget_ms: int) -> None:
    """Open a deadline ``budget_ms`` from now for this context (one web request)."""
    _deadline.set((time.monotonic() + budget_ms / 1000, budget_ms))


def end_deadline() -> None:
    _deadline.set(None)


@contextmanager
def read_deadline(budget_ms: int | None) -> Iterator[None]:
    """A deadline for the block, unless an outer one (the request's) already bounds it or
    ``budget_ms`` is None."""
    if budget_ms is None or _deadline.get() is not None:
        yield
        return
    token = _deadline.set((time.monotonic() + budget_ms / 1000, budget_ms))
    try:
        yield
    finally:
        _deadline.reset(token)


def current() -> tuple[float, int] | None:
    """The open deadline (monotonic seconds, budget ms), if any."""
    return _deadline.get()


def remaining_ms() -> int | None:
    """Milliseconds left of the open deadline (None without one); raises :class:`ReadTimeout` at 0."""
    d = _deadline.get()
    if d is None:
        return None
    left = int((d[0] - time.monotonic()) * 1000)
    if left <= 0:
        raise ReadTimeout(d[1])
    return left
