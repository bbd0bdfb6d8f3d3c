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
from hypermindlabs.core.events import format_timestamp, parse_timestamp
from hypermindlabs.core.vocabulary import DIMENSIONS, MAX_FILTER_VALUE_LEN, STATUSES, TAG_KEY_RULE, is_tag_key

__all__ = ["Filters", "QueryError", "parse_filters", "parse_time"]

DIMENSION_PARAMS: tuple[str, ...] = DIMENSIONS
RUN_PARAMS: tuple[str, ...] = ("status", "error_class", "cluster")
_RELATIVE = re.compile(r"now(?:\s*-\s*(\d+)\s*(ms|s|m|h|d|w))?")
_UNIT_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}


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
    """RFC 3339, epoch ms (as Grafana's ``${__from}``), epoch s/µs/ns by magnitude, or ``now-6h``."""
    v = value.strip()
    m = _RELATIVE.fullmatch(v)
    if m:
        amount, unit = m.groups()
        return now_ns - (int(amount) * _UNIT_NS[unit] if amount else 0)
    try:
        return parse_timestamp(v, param)
    except EventValidationError as exc:
        raise QueryError(param, exc.reason + " (or a relative time such as now-6h)") from exc


def _values(raw: Sequence[str], param: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in raw:
        for v in item.split(","):
            v = v.strip()
            if v:
                if len(v) > MAX_FILTER_VALUE_LEN:
                    raise QueryError(param, f"value longer than {MAX_FILTER_VALUE_LEN} characters")
                out.append(v)
    return tuple(dict.fromkeys(out))


def parse_filters(args: Mapping[str, Sequence[str]], *, now_ns: int, allowed_extra: Sequence[str] = ()) -> Filters:
    """Parse multi-valued query args (``{"project": ["a,b"], "tag.env": ["prod"], ...}``)."""
    kw: dict[str, Any] = {}
    tags: dict[str, tuple[str, ...]] = {}
    extra: dict[str, Any] = {}
    for param, raw in args.items():
        if param in DIMENSION_PARAMS or param in RUN_PARAMS:
            kw[param] = _values(raw, param)
        elif param.startswith("tag."):
            key = param[4:]
            if not is_tag_key(key):
                raise QueryError(param, TAG_KEY_RULE)
            tags[key] = _values(raw, param)
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
