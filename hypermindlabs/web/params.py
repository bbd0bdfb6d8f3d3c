"""Query-parameter parsing for every read endpoint and the CLI, and the one handler for field errors.

The API and ``hypermind-obs`` parse the same parameters the same way: limits, windows (``from``,
``to`` with a default span), the metrics ``step``, filters (:func:`~hypermindlabs.core.filters.parse_filters`),
and build the query records the readers take (:class:`~hypermindlabs.rollups.query.MetricsQuery`,
:class:`~hypermindlabs.triage.report.ClusterQuery`). Any :class:`~hypermindlabs.core.errors.FieldError`
becomes ``400 {"error", "field"}`` through :func:`register_error_handler`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from flask import Flask, Response

from hypermindlabs.config import Settings
from hypermindlabs.core.errors import FieldError, QueryError
from hypermindlabs.core.filters import Filters, QueryLimits, parse_filters
from hypermindlabs.core.text import ascii_int
from hypermindlabs.core.vocabulary import KINDS, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, is_tag_key
from hypermindlabs.rollups.facts import MINUTE
from hypermindlabs.rollups.query import (
    DEFAULT_WINDOW_NS,
    GROUP_BY,
    MAX_GROUP_BY,
    MAX_POINTS,
    STEP_KINDS,
    MetricsQuery,
    auto_step,
    resolution,
)
from hypermindlabs.triage.report import MAX_TREND_POINTS, SORTS, ClusterQuery, default_step_ns

__all__ = [
    "query_limits",
    "parse_int",
    "parse_limit",
    "window",
    "parse_runs_query",
    "parse_metrics_query",
    "parse_cluster_query",
    "register_error_handler",
]

_NS = 10**9
DAY_NS = 86_400 * _NS
# ASCII digits, at most 12 (a 1796140800000-second step overflowed the clock); at most a year.
_STEP = re.compile(r"([0-9]{1,12})\s*(s|m|h|d|w)?", re.ASCII)
MAX_STEP_S = 366 * 86400
_STEP_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, None: 1}
_METRIC_PARAMS = ("group_by", "step", "kind", "limit")


def register_error_handler(app: Flask) -> None:
    """Answer every :class:`FieldError` raised by a view with ``400 {"error", "field"}``."""
    from hypermindlabs.web.responses import error_response

    @app.errorhandler(FieldError)
    def _field_error(exc: FieldError) -> Response:
        return error_response(400, exc.reason, exc.field)


def query_limits(settings: Settings) -> QueryLimits:
    """The caps on one query (tag filters, values per filter, timeseries points) from ``settings``."""
    return QueryLimits(
        max_tag_filters=settings.query_max_tag_filters,
        max_filter_values=settings.query_max_filter_values,
        max_points=settings.query_max_points,
    )


def parse_int(raw: str | None, name: str, *, default: int, lo: int, hi: int) -> int:
    """An integer parameter in ``[lo, hi]``; ``default`` when absent.

    ASCII digits only: ``int()`` would also take ``１０``, ``٣`` and ``1_0``.
    """
    if raw is None:
        return default
    value = ascii_int(raw.strip())
    if value is None:
        raise QueryError(name, "must be an integer")
    if not lo <= value <= hi:
        raise QueryError(name, f"must be between {lo} and {hi}")
    return value


def parse_limit(raw: str | None, *, default: int = PAGE_LIMIT_DEFAULT) -> int:
    """The page size of a listing: 1 to :data:`~hypermindlabs.core.vocabulary.PAGE_LIMIT_MAX`."""
    return parse_int(raw, "limit", default=default, lo=1, hi=PAGE_LIMIT_MAX)


def window(filters: Filters, *, now_ns: int, default_ns: int, message: str = "must be before to") -> tuple[int, int]:
    """The ``[from, to)`` a reader covers: ``to`` defaults to now, ``from`` to ``default_ns`` before ``to``."""
    to_ns = filters.to_ns if filters.to_ns is not None else now_ns
    from_ns = filters.from_ns if filters.from_ns is not None else to_ns - default_ns
    if to_ns <= from_ns:
        raise QueryError("from", message)
    return from_ns, to_ns


def parse_runs_query(
    args: Mapping[str, Sequence[str]], *, now_ns: int, limits: QueryLimits | None = None
) -> tuple[Filters, int, str | None]:
    """``GET /api/v1/runs``: (filters, limit, cursor)."""
    args = dict(args)
    limit = parse_limit(args.pop("limit", [None])[-1])
    cursor = args.pop("cursor", [None])[-1]
    return parse_filters(args, now_ns=now_ns, limits=limits), limit, cursor


def parse_cluster_query(
    args: Mapping[str, Sequence[str]], *, now_ns: int, limits: QueryLimits | None = None
) -> ClusterQuery:
    """``GET /api/v1/failures/clusters`` and ``hypermind-obs triage``: the window defaults to a day.

    ``step`` (a duration: 1h, 1d, 15m…) sets the trend buckets, aligned to multiples of the step
    since the epoch; without it the step is an hour up to two-day windows, a day beyond. The
    legacy ``buckets`` (that many equal buckets from ``from``) applies only without ``step``.
    """
    f = parse_filters(args, now_ns=now_ns, allowed_extra=("buckets", "samples", "step", "limit", "min_runs", "sort"),
                      limits=limits)
    from_ns, to_ns = window(f, now_ns=now_ns, default_ns=DAY_NS)
    sort = (f.extra.get("sort") or "failed_runs").strip()
    if sort not in SORTS:
        raise QueryError("sort", f"must be one of {', '.join(SORTS)}")
    raw_step, raw_buckets = f.extra.get("step"), f.extra.get("buckets")
    step_ns = buckets = None
    if raw_step is not None:
        step_ns = _parse_step(raw_step) * _NS
    elif raw_buckets is not None:
        buckets = parse_int(raw_buckets, "buckets", default=24, lo=1, hi=MAX_TREND_POINTS)
    else:
        step_ns = default_step_ns(to_ns - from_ns)
    if step_ns is not None and (to_ns - (from_ns - from_ns % step_ns)) / step_ns > MAX_TREND_POINTS:
        raise QueryError("step", f"gives more than {MAX_TREND_POINTS} trend points for this window; use a longer step")
    return ClusterQuery(
        filters=f,
        from_ns=from_ns,
        to_ns=to_ns,
        buckets=buckets,
        step_ns=step_ns,
        samples=parse_int(f.extra.get("samples"), "samples", default=5, lo=0, hi=100),
        limit=parse_int(f.extra.get("limit"), "limit", default=100, lo=1, hi=PAGE_LIMIT_MAX),
        min_runs=parse_int(f.extra.get("min_runs"), "min_runs", default=1, lo=0, hi=10**9),
        sort=sort,
    )


def _parse_step(raw: str) -> int:
    m = _STEP.fullmatch(raw.strip().lower())
    if m is None:
        raise QueryError("step", "expected seconds or a duration such as 60, 1m, 5m, 1h, 1d")
    seconds = int(m.group(1)) * _STEP_UNIT_S[m.group(2)]
    if seconds > MAX_STEP_S:
        raise QueryError("step", f"at most {MAX_STEP_S // 86400} days")
    if seconds < MINUTE or seconds % MINUTE:
        raise QueryError("step", "must be a whole number of minutes (the finest rollup is 1 minute)")
    return seconds


def _split(raw: Sequence[str]) -> list[str]:
    return [v.strip() for item in raw for v in item.split(",") if v.strip()]


def parse_metrics_query(
    args: Mapping[str, Sequence[str]], *, now_ns: int, timeseries: bool, limits: QueryLimits | None = None
) -> MetricsQuery:
    """Parse the query parameters of ``/api/v1/metrics/*``; raise :class:`QueryError` naming the field."""
    args = dict(args)
    own = {k: args.pop(k) for k in _METRIC_PARAMS if k in args}
    if "cluster" in args:
        raise QueryError(
            "cluster", "failure clusters are not a rollup dimension; use /api/v1/failures/clusters"
        )
    filters = parse_filters(args, now_ns=now_ns, limits=limits)

    kinds = tuple(dict.fromkeys(_split(own.get("kind", ["run"])))) or ("run",)
    for k in kinds:
        if k not in KINDS:
            raise QueryError("kind", f"must be run or one or more of {', '.join(STEP_KINDS)}, got {k[:32]!r}")
    if "run" in kinds and len(kinds) > 1:
        raise QueryError("kind", "run rows and step rows cannot be mixed; ask for kind=run or step kinds")

    group_by = tuple(dict.fromkeys(_split(own.get("group_by", []))))
    for g in group_by:
        if g.startswith("tag."):
            if not is_tag_key(g[4:]):
                raise QueryError("group_by", f"bad tag key in {g[:70]!r}")
        elif g not in GROUP_BY:
            raise QueryError("group_by", f"must be among {', '.join(GROUP_BY)} or tag.<key>, got {g[:32]!r}")
    if len(group_by) > MAX_GROUP_BY:
        raise QueryError("group_by", f"at most {MAX_GROUP_BY} dimensions")

    limit = parse_int(own.get("limit", [None])[-1], "limit", default=100, lo=1, hi=PAGE_LIMIT_MAX)

    from_ns, to_ns = window(filters, now_ns=now_ns, default_ns=DEFAULT_WINDOW_NS,
                            message="must be before to (the default window is the 24 hours before to)")  # fmt: skip
    step_s: int | None = None
    step_auto = False
    finest = resolution(filters, kinds, group_by)
    if timeseries:
        if "step" in own:
            step_s = _parse_step(own["step"][-1])
            if step_s % finest:
                what = "step kinds" if kinds != ("run",) else "this query"
                raise QueryError(
                    "step", f"must be a whole number of {finest // 60} minutes: the finest rollup of {what} "
                    f"is {finest // 60} minutes",
                )  # fmt: skip
        else:
            step_s, step_auto = auto_step(to_ns - from_ns, finest), True
        align = step_s * _NS
    elif "step" in own:
        raise QueryError("step", "only for /metrics/timeseries")
    else:
        align = finest * _NS
    eff_from = from_ns - from_ns % align
    eff_to = -(-to_ns // align) * align
    if step_s is not None and (eff_to - eff_from) // align > MAX_POINTS:
        raise QueryError("step", f"too small for the window: at most {MAX_POINTS} points")
    return MetricsQuery(
        filters=filters, kinds=kinds, group_by=group_by, from_ns=eff_from, to_ns=eff_to,
        requested_from_ns=from_ns, requested_to_ns=to_ns, step_s=step_s, limit=limit, step_auto=step_auto,
        max_points=limits.max_points if limits is not None else None,
    )  # fmt: skip
