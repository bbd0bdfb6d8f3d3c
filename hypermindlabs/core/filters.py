"""The common query filters of the API (DESIGN §3), parsed from query parameters into one record.

Pure: the clock is passed in. Bad parameters raise :class:`QueryError` naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from hypermindlabs.core.errors import EventValidationError, QueryError
from hypermindlabs.core.events import MAX_TIME_NS, MIN_TIME_NS, format_timestamp, parse_epoch_text, parse_timestamp
from hypermindlabs.core.text import NUL
from hypermindlabs.core.vocabulary import DIMENSIONS, MAX_FILTER_VALUE_LEN, STATUSES, TAG_KEY_RULE, is_tag_key

__all__ = ["Filters", "QueryError", "QueryLimits", "parse_filters", "parse_time"]

DIMENSION_PARAMS: tuple[str, ...] = DIMENSIONS
RUN_PARAMS: tuple[str, ...] = ("status", "error_class", "cluster")
# ASCII digits, at most 19 of them: a longer amount overflows every range (and int() of thousands
# of digits raises), so the pattern refuses it, not the arithmetic.
_RELATIVE = re.compile(r"now(?:\s*-\s*([0-9]{1,19})\s*(ms|s|m|h|d|w))?", re.ASCII)
_ASCII_DIGITS = frozenset("0123456789")
_UNIT_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}


@dataclass(frozen=True)
class QueryLimits:
    """How much one query may ask for; past a limit the API answers 400 saying which and how to narrow.

    Unbounded, 200 tag filters kept a PostgreSQL planner busy for minutes and a timeseries answer
    reached 41 MB. The web layer builds this from ``Settings.query_max_*``
    (``HYPERMIND_QUERY_MAX_*``); without it (trusted callers such as the CLI) nothing is capped.
    """

    max_tag_filters: int
    max_filter_values: int
    max_points: int


@dataclass(frozen=True)
class Filters:
    """Any-of value sets per dimension, tag filters, a half-open time range [from, to) in ns."""

    project: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    tool: tuple[str, ...] = ()
    scenario: tuple[str, ...] = ()
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    from_ns: int | None = None
    to_ns: int | None = None
    status: tuple[str, ...] = ()
    error_class: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_query(self) -> dict[str, str]:
        """Query parameters that reproduce these filters (times as epoch ms): for drill-down URLs."""
        q: dict[str, str] = {}
        for name in (*DIMENSION_PARAMS, *RUN_PARAMS):
            values = getattr(self, name)
            if values:
                q[name] = ",".join(values)
        for key, values in self.tags:
            q[f"tag.{key}"] = ",".join(values)
        if self.from_ns is not None:
            q["from"] = _ns_to_query(self.from_ns)
        if self.to_ns is not None:
            q["to"] = _ns_to_query(self.to_ns)
        return q

    def query_string(self) -> str:
        return urlencode(self.to_query())


def _ns_to_query(ns: int) -> str:
    # Epoch ms when exact (Grafana's form); RFC 3339 with ns otherwise, so drill-down stays exact.
    if ns % 1_000_000 == 0:
        return str(ns // 1_000_000)
    return format_timestamp(ns)


def parse_time(value: str, param: str, *, now_ns: int) -> int:
    """RFC 3339, epoch ms (as Grafana's ``${__from}``), epoch s/µs/ns by magnitude, or ``now-6h``.

    Strict: ASCII digits only, and the result, relative or not, lies in the years 2000–2100.
    """
    v = value.strip()
    if NUL in v:
        raise QueryError(param, "must not contain NUL (\\x00)")
    m = _RELATIVE.fullmatch(v)
    if m:
        amount, unit = m.groups()
        ns = now_ns - (int(amount) * _UNIT_NS[unit] if amount else 0)
        if not MIN_TIME_NS <= ns < MAX_TIME_NS:
            raise QueryError(param, f"{v[:40]!r} falls outside the years 2000–2100")
        return ns
    if any(ch.isdigit() and ch not in _ASCII_DIGITS for ch in v):
        raise QueryError(param, "digits must be ASCII 0-9")
    try:
        if v[:1] in _ASCII_DIGITS and not (len(v) > 10 and v[4] == "-"):
            return parse_epoch_text(v, param)  # query text: digits are an epoch (Grafana sends ms)
        return parse_timestamp(v, param)
    except EventValidationError as exc:
        raise QueryError(param, exc.reason + " (or a relative time such as now-6h)") from exc


def _values(raw: Sequence[str], param: str, limits: QueryLimits | None) -> tuple[str, ...]:
    out: list[str] = []
    for item in raw:
        if NUL in item:
            raise QueryError(param, "must not contain NUL (\\x00)")
        for v in item.split(","):
            v = v.strip()
            if v:
                if len(v) > MAX_FILTER_VALUE_LEN:
                    raise QueryError(param, f"value longer than {MAX_FILTER_VALUE_LEN} characters")
                out.append(v)
    values = tuple(dict.fromkeys(out))
    if limits is not None and len(values) > limits.max_filter_values:
        raise QueryError(
            param, f"at most {limits.max_filter_values} values per parameter (HYPERMIND_QUERY_MAX_FILTER_VALUES)"
        )
    return values


def parse_filters(
    args: Mapping[str, Sequence[str]],
    *,
    now_ns: int,
    allowed_extra: Sequence[str] = (),
    limits: QueryLimits | None = None,
) -> Filters:
    """Parse multi-valued query args (``{"project": ["a,b"], "tag.env": ["prod"], ...}``).

    ``limits`` caps the tag filters and the values per filter (the API always passes them).
    """
    kw: dict[str, Any] = {}
    tags: dict[str, tuple[str, ...]] = {}
    extra: dict[str, Any] = {}
    for param, raw in args.items():
        if NUL in param:
            raise QueryError(param, "parameter names must not contain NUL (\\x00)")
        if param in DIMENSION_PARAMS or param in RUN_PARAMS:
            kw[param] = _values(raw, param, limits)
        elif param.startswith("tag."):
            key = param[4:]
            if not is_tag_key(key):
                raise QueryError(param, TAG_KEY_RULE)
            if limits is not None and key not in tags and len(tags) >= limits.max_tag_filters:
                raise QueryError(
                    param, f"at most {limits.max_tag_filters} tag filters per query "
                    "(HYPERMIND_QUERY_MAX_TAG_FILTERS); filter on fewer tags",
                )
            tags[key] = _values(raw, param, limits)
        elif param in ("from", "to"):
            kw[f"{param}_ns"] = parse_time(raw[-1], param, now_ns=now_ns)
        elif param in allowed_extra:
            extra[param] = raw[-1]
        else:
            allowed = sorted({*DIMENSION_PARAMS, *RUN_PARAMS, "from", "to", "tag.<key>", *allowed_extra})
            raise QueryError(param, f"unknown parameter; allowed: {', '.join(allowed)}")
    if "status" in kw:
        bad = [s for s in kw["status"] if s not in STATUSES]
        if bad:
            raise QueryError("status", "must be ok or error")
    if kw.get("from_ns") is not None and kw.get("to_ns") is not None and kw["to_ns"] <= kw["from_ns"]:
        raise QueryError("to", "must be after from")
    return Filters(**kw, tags=tuple(sorted(tags.items())), extra=extra)
