"""Label caps for exported metrics: a per-label budget, first come first admitted, the rest fold.

Cardinality is a policy in code (DESIGN §4): each capped label (project, model, tool, scenario,
error class, cluster…) admits values first come while under its budget; every value after that
is replaced by ``__other__`` and the fold is counted. Admitted values are persisted in the
``label_admissions`` table, so the admitted set is the same after a restart and in every process
sharing the database.

>>> caps = Cardinality({"model": 2})
>>> [caps.cap("model", m) for m in ("gpt-4o", "claude", "gemini", "gpt-4o")]
['gpt-4o', 'claude', '__other__', 'gpt-4o']
>>> caps.folds()
{'model': 1}

Never raises into the caller: when the database is unreachable a new value folds (and is
counted), and the database is retried after a pause. Memory is bounded by the budgets: only
admitted values are remembered, and once a budget is full no more database work happens for it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping

from hypermindlabs.config import ConfigError
from hypermindlabs.conventions import (
    DEFAULT_LABEL_BUDGETS,
    LABEL_BUDGETS_ENV,
    MAX_LABEL_VALUE_CHARS,
    OVERFLOW_VALUE,
)
from hypermindlabs.store.label_admissions import LabelAdmissions

__all__ = ["Cardinality", "parse_budgets", "sanitize_label_value"]

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_BUDGET = 100_000



def parse_budgets(spec: str | None, *, base: Mapping[str, int] = DEFAULT_LABEL_BUDGETS) -> dict[str, int]:
    """``"model=100,tool=500"`` → the default budgets with those overridden; ConfigError if invalid.

    >>> parse_budgets("model=7")["model"], parse_budgets(None)["model"]
    (7, 50)
    """
    budgets = dict(base)
    if not spec or not spec.strip():
        return budgets
    for part in spec.split(","):
        if not part.strip():
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep or name not in base:
            raise ConfigError(
                f"{LABEL_BUDGETS_ENV}: expected label=count pairs, labels being "
                f"{', '.join(sorted(base))}; got {part!r}"
            )
        try:
            value = int(raw.strip())
        except ValueError as exc:
            raise ConfigError(
                f"{LABEL_BUDGETS_ENV}: {name}: expected a whole number, got {raw.strip()!r}"
            ) from exc
        if not 1 <= value <= _MAX_BUDGET:
            raise ConfigError(f"{LABEL_BUDGETS_ENV}: {name}: budget must be between 1 and {_MAX_BUDGET}")
        budgets[name] = value
    return budgets


def sanitize_label_value(value: str) -> str:
    """Untrusted text as a safe label value: no control characters, valid UTF-8, bounded length.

    The exposition escapes quotes, backslashes and newlines itself; this keeps other control
    characters out and caps the length, keeping long values distinct by a hash suffix.
    """
    if _CONTROL.search(value):
        value = _CONTROL.sub("\ufffd", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from in-process callers
        value = value.encode("utf-8", "replace").decode("utf-8")
    if len(value) > MAX_LABEL_VALUE_CHARS:
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
        value = f"{value[: MAX_LABEL_VALUE_CHARS - 9]}~{digest}"
    return value


class Cardinality:
    """Per-label budgets with stable, shared admission. Thread-safe; never raises into callers.

    ``admissions`` is the store's :class:`~hypermindlabs.store.label_admissions.LabelAdmissions`;
    without it the admitted set lives in memory only. ``clock`` gives Unix ns
    for the admission time; ``monotonic`` (seconds) times the pause after a database failure.
    """

    def __init__(
        self,
        budgets: Mapping[str, int] | None = None,
        *,
        admissions: LabelAdmissions | None = None,
        clock: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
        retry_after_s: float = 30.0,
    ) -> None:
        self.budgets: dict[str, int] = dict(DEFAULT_LABEL_BUDGETS if budgets is None else budgets)
        self._admissions = admissions
        self._clock = clock
        self._monotonic = monotonic
        self._retry_after_s = retry_after_s
        self._lock = threading.Lock()
        # label → admitted values (sanitized), and the raw → label-value cache for the fast path.
        # Only admitted values are kept, so both stay within the budgets.
        self._admitted: dict[str, set[str]] = {label: set() for label in self.budgets}
        self._cache: dict[str, dict[str, str]] = {label: {} for label in self.budgets}
        self._folds: dict[str, int] = dict.fromkeys(self.budgets, 0)
        self._db_down_until = 0.0
        if admissions is not None:
            self._load()

    # -- the fast path ---------------------------------------------------------------------
    def cap(self, label: str, value: str | None) -> str | None:
        """The value to export for ``label``: itself when admitted, else ``__other__``.

        ``None`` and ``""`` (no value) stay ``None``: the label is left off the series.
        """
        if not value:
            return None
        hit = self._cache[label].get(value)
        if hit is not None:
            return hit
        return self._slow(label, value)

    def folds(self) -> dict[str, int]:
        """Values folded into ``__other__`` so far, per label (every budgeted label, zeros included)."""
        with self._lock:
            return dict(self._folds)

    def admitted(self, label: str) -> frozenset[str]:
        with self._lock:
            return frozenset(self._admitted[label])

    # -- admission ---------------------------------------------------------------------------
    def _slow(self, label: str, raw: str) -> str:
        value = sanitize_label_value(raw)
        if value == OVERFLOW_VALUE:
            return OVERFLOW_VALUE  # a literal "__other__" joins the fold without counting as one
        with self._lock:
            admitted = self._admitted[label]
            if value in admitted:
                self._remember(label, raw, value)
                return value
            budget = self.budgets[label]
            if len(admitted) >= budget:
                self._folds[label] += 1
                return OVERFLOW_VALUE
            if self._admissions is None:
                admitted.add(value)
                self._remember(label, raw, value)
                return value
            if self._monotonic() < self._db_down_until:
                self._folds[label] += 1
                return OVERFLOW_VALUE
            try:
                current = self._admit_in_db(label, value, budget)
            except Exception:  # noqa: BLE001 - a metrics label must never fail the caller
                log.warning(
                    "label caps: could not admit a %s value (database unavailable); folding into %s "
                    "for %.0f s",
                    label, OVERFLOW_VALUE, self._retry_after_s, exc_info=True,
                )  # fmt: skip
                self._db_down_until = self._monotonic() + self._retry_after_s
                self._folds[label] += 1
                return OVERFLOW_VALUE
            admitted.update(current)
            if value in current:
                self._remember(label, raw, value)
                return value
            self._folds[label] += 1
            return OVERFLOW_VALUE

    def _remember(self, label: str, raw: str, value: str) -> None:
        # Cache only values that are their own label value: a raw value needing sanitizing could
        # come in endless variants mapping to one admitted value, and the cache must stay bounded.
        if raw == value:
            self._cache[label][raw] = value

    def _admit_in_db(self, label: str, value: str, budget: int) -> set[str]:
        assert self._admissions is not None  # noqa: S101 - only called with admissions
        return self._admissions.admit(label, value, now_ns=self._clock(), budget=budget)

    def _load(self) -> None:
        assert self._admissions is not None  # noqa: S101
        try:
            rows = self._admissions.all()
        except Exception:  # noqa: BLE001 - start with an empty set; admission re-reads the table
            log.warning("label caps: could not load admitted label values", exc_info=True)
            return
        for row in rows:
            label, value = row[0], row[1]
            admitted = self._admitted.get(label)
            if admitted is not None and len(admitted) < self.budgets[label]:
                admitted.add(value)
                self._cache[label][value] = value
