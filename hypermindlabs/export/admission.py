"""Label budgets that recover from a flood: admission over a sliding window of recent use.

Each capped label (project, model, tool, scenario, error class, cluster…) has a budget of
*active* values: a value is active while it was seen within the last ``window`` (default 1 h,
``HYPERMIND_LABEL_WINDOW_S``). A new value is admitted when fewer than ``budget`` values are active;
otherwise it folds into ``__other__`` and the fold is counted (``hypermind_label_overflow_total``).

- A value that keeps arriving stays active, so no series is renamed while it is in use — a flood
  of junk cannot push it out.
- Junk values of a flood that stopped expire ``window`` after their last use; from then on a real
  value that keeps sending is admitted at its next event. The recovery time is ``window``.
- Admissions live in the ``export_labels`` table and are decided in the ingest transaction under
  the store's writer lock, so every process and worker agrees on them.

The per-process cache keeps only admitted values (bounded by the budgets); once a budget is full
no database work happens for it until the oldest active value could expire, so a flood costs one
dictionary lookup per event. Time is the injected clock (Unix ns), never read here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from sqlalchemy.engine import Connection

from hypermindlabs import conventions as c
from hypermindlabs.export.cardinality import sanitize_label_value
from hypermindlabs.store import export_series as sql

__all__ = ["WindowCaps", "DEFAULT_WINDOW_S"]

DEFAULT_WINDOW_S = 3600.0


class WindowCaps:
    """Per-label budgets over a sliding window; :meth:`bind` gives the cap of one transaction."""

    def __init__(self, budgets: Mapping[str, int] | None = None, *, window_s: float = DEFAULT_WINDOW_S,
                 clock: Callable[[], int]) -> None:  # fmt: skip
        self.budgets = dict(c.DEFAULT_LABEL_BUDGETS if budgets is None else budgets)
        self.window_ns = int(window_s * 1e9)
        self._clock = clock
        self._lock = threading.Lock()
        # label → {value: last seen as written to the database}; label → no admission before (ns).
        self._seen: dict[str, dict[str, int]] = {label: {} for label in self.budgets}
        self._full_until: dict[str, int] = dict.fromkeys(self.budgets, 0)

    def bind(
        self, conn: Connection, on_fold: Callable[[str, int], None]
    ) -> Callable[[str, str | None, int], str | None]:
        """The cap function for one transaction on ``conn``; ``on_fold(label, sign)`` counts a fold."""
        now = self._clock()
        touched: dict[str, list[str]] = {}
        # Values admitted in this transaction stay admitted until it ends (``now`` is fixed): a
        # batch asks for the same few values thousands of times, so they are answered from here.
        # Folds are not kept: each one is counted.
        kept: dict[tuple[str, str], str] = {}
        # Per label, the active values as this transaction sees them: read once (under the writer
        # lock nobody else changes them), then kept up to date with this transaction's own
        # admissions, which are written at :func:`flush` — so a batch of new values costs a few
        # statements per label, not three per value.
        txn = _Txn()

        def cap(label: str, raw: str | None, sign: int) -> str | None:
            if not raw:
                return None
            hit = kept.get((label, raw))
            if hit is not None:
                return hit
            value = sanitize_label_value(raw)
            if value == c.OVERFLOW_VALUE:
                return value
            with self._lock:
                seen = self._seen[label]
                last = seen.get(value)
                if last is not None and last >= now - self.window_ns:
                    if last < now - self.window_ns // 4:  # refresh the database now and then, not per event
                        seen[value] = now
                        touched.setdefault(label, []).append(value)
                    kept[label, raw] = value
                    return value
                if self._admit(conn, label, value, now, txn):
                    kept[label, raw] = value
                    return value
            on_fold(label, sign)
            return c.OVERFLOW_VALUE

        def flush() -> None:
            for label, values in txn.admitted.items():
                sql.admit_labels(conn, label, values, now)
            for label, values in touched.items():
                sql.touch_labels(conn, label, values, now)
            for label, values in txn.refreshed.items():
                sql.touch_labels(conn, label, values, now)
            txn.admitted.clear()
            txn.refreshed.clear()
            touched.clear()

        cap.flush = flush  # type: ignore[attr-defined]
        return cap

    def _admit(self, conn: Connection, label: str, value: str, now: int, txn: _Txn) -> bool:
        if now < self._full_until[label]:
            return False
        active = txn.active.get(label)
        if active is None:
            active = txn.active[label] = sql.active_labels(conn, label, now - self.window_ns)
            seen = self._seen[label]
            seen.clear()
            seen.update(active)
        seen = self._seen[label]
        if value in active:
            txn.refreshed.setdefault(label, []).append(value)
            active[value] = seen[value] = now
            return True
        budget = self.budgets[label]
        if len(active) >= budget:
            # Nothing can expire before the oldest active value does (others only refresh theirs).
            self._full_until[label] = min(active.values()) + self.window_ns + 1
            return False
        txn.admitted.setdefault(label, []).append(value)
        active[value] = seen[value] = now
        return True


class _Txn:
    """One transaction's admission state: active values read per label, admissions and refreshes to write."""

    __slots__ = ("active", "admitted", "refreshed")

    def __init__(self) -> None:
        self.active: dict[str, dict[str, int]] = {}
        self.admitted: dict[str, list[str]] = {}
        self.refreshed: dict[str, list[str]] = {}
