"""Metrics answers (summary and timeseries) read from the rollups only, never from raw events.

A query names a level (``kind=run``, the default, or step kinds such as ``kind=tool``), the
common filters, ``group_by`` dimensions and a window. The planner picks, per time tier, the
cheapest cube that can answer exactly (:data:`hypermindlabs.rollups.facts.CUBES`), covers the
window with whole buckets (days, then hours, quarters and minutes at the edges) and merges the
cells: measures by SUM, latency percentiles from the bins summed per group.

Windows are half-open, ``[from, to)``, and facts are dated by their run's start. A summary's
window is widened to whole minutes and a timeseries' to whole steps (aligned to the Unix epoch,
so to UTC midnight for days); the answer reports that *effective* window, and every row's
``runs_url`` uses it, so the drill-down lists exactly the runs behind the numbers.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import and_, exists, func, literal_column, select
from sqlalchemy.engine import Connection

from hypermindlabs.core.events import KINDS, format_timestamp
from hypermindlabs.core.filters import Filters, QueryError, parse_filters
from hypermindlabs.core.sketch import quantiles
from hypermindlabs.rollups.facts import CUBES, MEASURES, MINUTE, Cube, part_of
from hypermindlabs.store.schema import rollup_cells, rollup_slice_members, rollup_slices

__all__ = ["MetricsQuery", "parse_metrics_query", "summary", "timeseries", "auto_step", "GROUP_BY"]

GROUP_BY: tuple[str, ...] = ("project", "model", "tool", "scenario", "kind", "error_class")
STEP_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k != "run")
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
NICE_STEPS_S: tuple[int, ...] = (
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400,
)  # fmt: skip
DEFAULT_WINDOW_NS = 24 * 3600 * 10**9
MAX_POINTS = 2000
MAX_GROUP_BY = 3
_NS = 10**9
_STEP = re.compile(r"(\d+)\s*(s|m|h|d|w)?")
_STEP_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, None: 1}
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_METRIC_PARAMS = ("group_by", "step", "kind", "limit")
_plus = operator.add


@dataclass(frozen=True)
class MetricsQuery:
    """A parsed metrics request; ``from_ns``/``to_ns`` are the effective (aligned) window."""

    filters: Filters
    kinds: tuple[str, ...]
    group_by: tuple[str, ...]
    from_ns: int
    to_ns: int
    requested_from_ns: int
    requested_to_ns: int
    step_s: int | None = None
    limit: int = 100
    step_auto: bool = False

    @property
    def level(self) -> str:
        return "run" if self.kinds == ("run",) else "step"


def auto_step(window_ns: int) -> int:
    """The nice step (s) giving the number of points closest to 100, within 50–200 when possible.

    >>> auto_step(24 * 3600 * 10**9), auto_step(14 * 86400 * 10**9), auto_step(3600 * 10**9)
    (900, 10800, 60)
    """
    window_s = max(window_ns / _NS, 60.0)
    return min(NICE_STEPS_S, key=lambda s: (not 50 <= window_s / s <= 200, abs(math.log(window_s / s / 100))))


def _parse_step(raw: str) -> int:
    m = _STEP.fullmatch(raw.strip().lower())
    if m is None:
        raise QueryError("step", "expected seconds or a duration such as 60, 1m, 5m, 1h, 1d")
    seconds = int(m.group(1)) * _STEP_UNIT_S[m.group(2)]
    if seconds < MINUTE or seconds % MINUTE:
        raise QueryError("step", "must be a whole number of minutes (the finest rollup is 1 minute)")
    return seconds


def _split(raw: Sequence[str]) -> list[str]:
    return [v.strip() for item in raw for v in item.split(",") if v.strip()]


def parse_metrics_query(args: Mapping[str, Sequence[str]], *, now_ns: int, timeseries: bool) -> MetricsQuery:
    """Parse the query parameters of ``/api/v1/metrics/*``; raise :class:`QueryError` naming the field."""
    args = dict(args)
    own = {k: args.pop(k) for k in _METRIC_PARAMS if k in args}
    if "cluster" in args:
        raise QueryError(
            "cluster", "failure clusters are not a rollup dimension; use /api/v1/failures/clusters"
        )
    filters = parse_filters(args, now_ns=now_ns)

    kinds = tuple(dict.fromkeys(_split(own.get("kind", ["run"])))) or ("run",)
    for k in kinds:
        if k not in KINDS:
            raise QueryError("kind", f"must be run or one or more of {', '.join(STEP_KINDS)}, got {k[:32]!r}")
    if "run" in kinds and len(kinds) > 1:
        raise QueryError("kind", "run rows and step rows cannot be mixed; ask for kind=run or step kinds")

    group_by = tuple(dict.fromkeys(_split(own.get("group_by", []))))
    for g in group_by:
        if g.startswith("tag."):
            if not _TAG_KEY.fullmatch(g[4:]):
                raise QueryError("group_by", f"bad tag key in {g[:70]!r}")
        elif g not in GROUP_BY:
            raise QueryError("group_by", f"must be among {', '.join(GROUP_BY)} or tag.<key>, got {g[:32]!r}")
    if len(group_by) > MAX_GROUP_BY:
        raise QueryError("group_by", f"at most {MAX_GROUP_BY} dimensions")

    limit = 100
    if "limit" in own:
        try:
            limit = int(own["limit"][-1])
        except ValueError as exc:
            raise QueryError("limit", "must be an integer") from exc
        if not 1 <= limit <= 1000:
            raise QueryError("limit", "must be between 1 and 1000")

    to_ns = filters.to_ns if filters.to_ns is not None else now_ns
    from_ns = filters.from_ns if filters.from_ns is not None else to_ns - DEFAULT_WINDOW_NS
    if to_ns <= from_ns:
        raise QueryError("from", "must be before to (the default window is the 24 hours before to)")
    step_s: int | None = None
    step_auto = False
    if timeseries:
        if "step" in own:
            step_s = _parse_step(own["step"][-1])
        else:
            step_s, step_auto = auto_step(to_ns - from_ns), True
        align = step_s * _NS
    elif "step" in own:
        raise QueryError("step", "only for /metrics/timeseries")
    else:
        align = MINUTE * _NS
    eff_from = from_ns - from_ns % align
    eff_to = -(-to_ns // align) * align
    if step_s is not None and (eff_to - eff_from) // align > MAX_POINTS:
        raise QueryError("step", f"too small for the window: at most {MAX_POINTS} points")
    return MetricsQuery(
        filters=filters, kinds=kinds, group_by=group_by, from_ns=eff_from, to_ns=eff_to,
        requested_from_ns=from_ns, requested_to_ns=to_ns, step_s=step_s, limit=limit, step_auto=step_auto,
    )  # fmt: skip


# -- planning -----------------------------------------------------------------------------------
def _member_keys(q: MetricsQuery) -> list[str]:
    keys: list[str] = []
    if q.level == "run" and (q.filters.tool or "tool" in q.group_by):
        keys.append("tool")
    keys += [f"tag.{k}" for k, _ in q.filters.tags]
    keys += [g for g in q.group_by if g.startswith("tag.") and g not in keys]
    return keys


def _dims_used(q: MetricsQuery) -> set[str]:
    dims = {"project", "scenario", "model"} if q.level == "run" else {"project", "scenario", "model", "tool"}
    return {d for d in dims if getattr(q.filters, d) or d in q.group_by} | (
        {"kind"} if q.level == "step" else set()
    )


def _capable(cube: Cube, q: MetricsQuery) -> bool:
    if cube.level != q.level or not _dims_used(q) <= set(cube.dims):
        return False
    keys = _member_keys(q)
    if cube.members == "none":
        return not keys
    if cube.members == "tool":
        # One row per tool used: exact when each tool is its own group or one tool is asked for.
        return keys == ["tool"] and ("tool" in q.group_by or len(q.filters.tool) == 1)
    if cube.members == "tag":
        # One row per tag: exact for one tag key (a run has one value per key).
        return len(keys) == 1 and keys[0].startswith("tag.")
    return True


def _tier_cubes(q: MetricsQuery) -> dict[int, Cube]:
    """For each tier, the cheapest cube that answers ``q`` exactly (CUBES is ordered by cost)."""
    out: dict[int, Cube] = {}
    for cube in CUBES:
        if _capable(cube, q):
            for tier in cube.tiers:
                out.setdefault(tier, cube)
    return out


def cover(from_ns: int, to_ns: int, tiers: Sequence[int]) -> list[tuple[int, int, int]]:
    """Whole buckets covering ``[from, to)``: the coarsest tier in the middle, finer ones at the edges.

    >>> h = 3600 * 10**9
    >>> [(t, a // h, b // h) for t, a, b in cover(0, 30 * h, (86400, 3600))]
    [(86400, 0, 24), (3600, 24, 30)]
    """
    if from_ns >= to_ns:
        return []
    if not tiers:
        raise ValueError("window not aligned to the finest tier")
    size = tiers[0] * _NS
    a = -(-from_ns // size) * size
    b = to_ns - to_ns % size
    if a >= b:
        return cover(from_ns, to_ns, tiers[1:])
    return [*cover(from_ns, a, tiers[1:]), (tiers[0], a, b), *cover(b, to_ns, tiers[1:])]


# -- reading ------------------------------------------------------------------------------------
@dataclass
class _Agg:
    sums: list[int] = field(default_factory=lambda: [0] * len(MEASURES))
    errors: int = 0
    classes: dict[str | None, int] = field(default_factory=dict)
    bins: dict[int, int] = field(default_factory=dict)
    # Drill-down exactness: the group took error runs without a failure class ("unknown"), or
    # the window has ok runs with a failure class (listed by status=ok but grouped elsewhere).
    null_class_errors: bool = False
    classified_ok: bool = False


def _group_columns(q: MetricsQuery, cube: Cube, s: Any) -> tuple[list[Any], list[Any]]:
    """(select columns, extra joins) for the SQL-grouped dimensions (:func:`_names`) on this cube."""
    cols: list[Any] = []
    joins: list[Any] = []
    for g in q.group_by:
        if g in ("error_class",) or (g == "kind" and q.level == "run"):
            continue  # from status / failure_class, or constant
        member = g == "tool" and q.level == "run" or g.startswith("tag.")
        if not member:
            cols.append(s.c[g])
        elif cube.members in ("tool", "tag"):
            cols.append(s.c.mvalue)
        else:
            m = rollup_slice_members.alias(f"g_{len(joins)}")
            on = [m.c.slice_id == s.c.slice_id, m.c.key == g]
            values = _member_filter(q, g)
            if values:
                on.append(m.c.value.in_(values))
            joins.append((m, and_(*on)))
            cols.append(m.c.value)
    return cols, joins


def _member_filter(q: MetricsQuery, key: str) -> tuple[str, ...]:
    if key == "tool":
        return q.filters.tool
    return dict(q.filters.tags).get(key[4:], ())


def _conditions(q: MetricsQuery, cube: Cube, s: Any) -> list[Any]:
    f = q.filters
    cond: list[Any] = []  # the level, cube and step kind are the cells' part
    for dim in ("project", "scenario", "model") + (("tool",) if q.level == "step" else ()):
        if getattr(f, dim):
            cond.append(s.c[dim].in_(getattr(f, dim)))
    if f.status:
        cond.append(s.c.status.in_(f.status))
    if f.error_class:
        cond.append(s.c.failure_class.in_(f.error_class))
    keys = _member_keys(q)
    if cube.members in ("tool", "tag"):
        cond.append(s.c.mkey == keys[0])
        if _member_filter(q, keys[0]):
            cond.append(s.c.mvalue.in_(_member_filter(q, keys[0])))
    elif cube.members == "all":
        for key in keys:
            values = _member_filter(q, key)
            if values and key not in q.group_by:  # a grouped key filters in its join
                m = rollup_slice_members
                cond.append(
                    exists().where(m.c.slice_id == s.c.slice_id, m.c.key == key, m.c.value.in_(values))
                )
    return cond


def _read(
    conn: Connection,
    q: MetricsQuery,
    cube: Cube,
    tier: int,
    window: tuple[int, int],
    aggs: dict[tuple[Any, ...], _Agg],
    origin_ns: int | None,
    step_ns: int | None,
) -> None:
    """Add the cells of one cube, tier and window to ``aggs`` (keyed by group values [, step])."""
    if cube.members == "all":
        _read_joined(conn, q, cube, tier, window, aggs, origin_ns, step_ns)
    else:
        _read_by_slice(conn, q, cube, tier, window, aggs, origin_ns, step_ns)


# Up to this many matching slices are passed to the cells query as a list; more are filtered in
# Python (the cells of the whole cube and window are then grouped by slice).
_MAX_SLICE_LIST = 5000


def _read_by_slice(
    conn: Connection,
    q: MetricsQuery,
    cube: Cube,
    tier: int,
    window: tuple[int, int],
    aggs: dict[tuple[Any, ...], _Agg],
    origin_ns: int | None,
    step_ns: int | None,
) -> None:
    """The small cubes (hundreds to a few thousand slices): pick the matching slices first, then
    sum the cells per slice id without a join, and group the slices in Python. A join would
    look a slice up for every cell; this looks each up once."""
    s, c = rollup_slices, rollup_cells
    gcols, _ = _group_columns(q, cube, s)
    conditions = _conditions(q, cube, s)
    where = [s.c.level == q.level, s.c.cube == cube.name, *conditions]
    if q.level == "step":
        where.append(s.c.kind.in_(q.kinds))
    slices = {
        row[0]: row[1:]
        for row in _rows(conn, select(s.c.slice_id, *gcols, s.c.status, s.c.failure_class).where(*where))
    }
    if not slices:
        return
    ng = len(gcols)
    want_class = "error_class" in q.group_by
    # Per slice: its group key (minus the time) and its outcome.
    keyed = {}
    for sid, attrs in slices.items():
        status, fclass = attrs[ng], attrs[ng + 1]
        keyed[sid] = (attrs[:ng], _error_class(status, fclass) if want_class else None, status, fclass)
    by_slice: list[Any] = [c.c.slice_id]
    if step_ns is not None:
        by_slice.append(literal_column(f"(rollup_cells.bucket_ns - {int(origin_ns or 0)}) / {int(step_ns)}"))
    listed = bool(conditions) and len(slices) <= _MAX_SLICE_LIST
    sums = [func.sum(c.c[m]) for m in MEASURES]
    for kind in q.kinds if q.level == "step" else (None,):
        cells = [c.c.part == part_of(cube, kind), c.c.tier == tier, c.c.bucket_ns >= window[0],
                 c.c.bucket_ns < window[1]]  # fmt: skip
        if listed:
            cells.append(c.c.slice_id.in_(list(slices)))
        nt = len(by_slice)
        for row in _rows(conn, select(*by_slice, *sums).where(*cells).group_by(*by_slice)):
            k = keyed.get(row[0])
            if k is None:
                continue
            attrs, eclass, status, fclass = k
            key = attrs + row[1:nt] + ((eclass,) if want_class else ())
            agg = aggs.get(key)
            if agg is None:
                agg = aggs[key] = _Agg()
            vals = row[nt:]
            agg.sums = list(map(_plus, agg.sums, vals))
            n = int(vals[0])
            if status == "error":
                cls = _error_class(status, fclass)
                agg.errors += n
                agg.classes[cls] = agg.classes.get(cls, 0) + n
                agg.null_class_errors |= fclass is None
            elif fclass is not None:
                agg.classified_ok = True
        for row in _rows(
            conn, select(*by_slice, c.c.bin, func.sum(c.c.n)).where(*cells).group_by(*by_slice, c.c.bin)
        ):
            k = keyed.get(row[0])
            if k is None:
                continue
            key = k[0] + row[1:nt] + ((k[1],) if want_class else ())
            b = aggs[key].bins
            b[row[nt]] = b.get(row[nt], 0) + int(row[nt + 1])


def _read_joined(
    conn: Connection,
    q: MetricsQuery,
    cube: Cube,
    tier: int,
    window: tuple[int, int],
    aggs: dict[tuple[Any, ...], _Agg],
    origin_ns: int | None,
    step_ns: int | None,
) -> None:
    """The ``full`` cube (slices are many, cells few per slice): join each cell to its slice."""
    s, c = rollup_slices, rollup_cells
    gcols, joins = _group_columns(q, cube, s)
    needs_slices = bool(gcols) or "error_class" in q.group_by
    if step_ns is not None:
        # The point's index, by integer division (both dialects truncate integer division; the
        # operands are ints we made, so inlining them is safe).
        gcols.append(literal_column(f"(rollup_cells.bucket_ns - {int(origin_ns or 0)}) / {int(step_ns)}"))
    conditions = _conditions(q, cube, s)
    needs_slices = needs_slices or bool(conditions)
    # Cells first: the (part, tier, bucket) prefix of their key is the window; slices are then
    # looked up by primary key.
    with_slices: Any = c.join(s, s.c.slice_id == c.c.slice_id)
    for m, on in joins:
        with_slices = with_slices.join(m, on)
    ng = len(gcols)
    want_class = "error_class" in q.group_by
    outcome = [s.c.status, s.c.failure_class]
    sums = [func.sum(c.c[m]) for m in MEASURES]
    for kind in q.kinds if q.level == "step" else (None,):
        where = [c.c.part == part_of(cube, kind), c.c.tier == tier, c.c.bucket_ns >= window[0],
                 c.c.bucket_ns < window[1], *conditions]  # fmt: skip
        if needs_slices:
            # One pass: per group, outcome and bin, the measures (the slice lookups dominate).
            keys = [*gcols, *outcome, c.c.bin]
            rows = _rows(conn, select(*keys, *sums).select_from(with_slices).where(*where).group_by(*keys))
            _add_outcomes(aggs, rows, ng, want_class, with_bins=True)
        else:
            # Two passes: the outcomes need the slices but give few rows; the bins (most rows)
            # are summed from the cells alone.
            keys = [*gcols, *outcome]
            rows = _rows(conn, select(*keys, *sums).select_from(with_slices).where(*where).group_by(*keys))
            _add_outcomes(aggs, rows, ng, want_class, with_bins=False)
            keys = [*gcols, c.c.bin]
            for row in _rows(conn, select(*keys, func.sum(c.c.n)).where(*where).group_by(*keys)):
                b = aggs[row[:ng]].bins
                b[row[ng]] = b.get(row[ng], 0) + int(row[ng + 1])  # PostgreSQL sums are numeric


def _add_outcomes(
    aggs: dict[tuple[Any, ...], _Agg],
    rows: list[tuple[Any, ...]],
    ng: int,
    want_class: bool,
    *,
    with_bins: bool,
) -> None:
    """Rows of (group values…, status, failure class, [bin,] measures…) into the aggregates."""
    first = ng + 3 if with_bins else ng + 2
    for row in rows:
        status, fclass = row[ng], row[ng + 1]
        eclass = _error_class(status, fclass)
        key = row[:ng] + (eclass,) if want_class else row[:ng]
        agg = aggs.get(key)
        if agg is None:
            agg = aggs[key] = _Agg()
        vals = row[first:]
        agg.sums = list(map(_plus, agg.sums, vals))  # PostgreSQL sums are numeric: int() at the end
        n = int(vals[0])
        if with_bins:
            agg.bins[row[ng + 2]] = agg.bins.get(row[ng + 2], 0) + n
        if status == "error":
            agg.errors += n
            agg.classes[eclass] = agg.classes.get(eclass, 0) + n
            agg.null_class_errors |= fclass is None
        elif fclass is not None:
            agg.classified_ok = True


def _error_class(status: str, failure_class: str | None) -> str | None:
    """The error_class group: the stored failure class; unknown for a failure without one."""
    return failure_class if failure_class is not None else ("unknown" if status == "error" else None)


def _rows(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    # Plain tuples from the driver: the rows here need no type processing (ints and strings),
    # and skipping SQLAlchemy's per-row wrapping halves the fetch. Statements stay cached.
    return conn.execute(stmt).cursor.fetchall()


def _plan(q: MetricsQuery) -> dict[int, Cube]:
    tiers = _tier_cubes(q)
    if MINUTE not in tiers:  # pragma: no cover - ``full`` serves every query at minutes
        raise AssertionError("no cube answers this query at the minute tier")
    return tiers


# -- answers ------------------------------------------------------------------------------------
def _names(q: MetricsQuery) -> list[str]:
    """Group key layout: the SQL-grouped dimensions, [time], then error_class (if grouped)."""
    return [g for g in q.group_by if g != "error_class" and not (g == "kind" and q.level == "run")]


def _group_dict(q: MetricsQuery, key: tuple[Any, ...]) -> dict[str, Any]:
    sql_names = _names(q)
    out = dict(zip(sql_names, key[: len(sql_names)], strict=True))
    if "kind" in q.group_by and q.level == "run":
        out["kind"] = "run"
    if "error_class" in q.group_by:
        out["error_class"] = key[-1]
    return {g: out[g] for g in q.group_by}


def _fields(q: MetricsQuery, agg: _Agg | None) -> dict[str, Any]:
    sums = dict(zip(MEASURES, [int(v) for v in agg.sums] if agg else [0] * len(MEASURES), strict=True))
    n = sums["n"]
    errors = agg.errors if agg else 0
    p = quantiles(agg.bins, QUANTILES) if agg else [None] * len(QUANTILES)
    out: dict[str, Any] = {("runs" if q.level == "run" else "steps"): n, "count": n, "errors": errors}
    out["success_rate"] = (n - errors) / n if n else None
    out["failure_rate"] = errors / n if n else None
    out["latency_ms"] = {
        "p50": p[0], "p95": p[1], "p99": p[2], "mean": sums["duration_us"] / n / 1000 if n else None,
    }  # fmt: skip
    out["tokens"] = {
        "input": sums["input_tokens"], "output": sums["output_tokens"],
        "input_proxy": sums["input_tokens_proxy"], "output_proxy": sums["output_tokens_proxy"],
    }  # fmt: skip
    if q.level == "run":
        out["tool_calls"] = sums["tool_calls"]
        out["tool_calls_per_run"] = sums["tool_calls"] / n if n else None
        out["llm_calls"] = sums["llm_calls"]
    classes = sorted((agg.classes if agg else {}).items(), key=lambda kv: (-kv[1], kv[0] or ""))
    out["error_classes"] = [{"error_class": c, "count": k, "rate": k / n} for c, k in classes]
    return out


def _runs_url(q: MetricsQuery, group: Mapping[str, Any], from_ns: int, to_ns: int, agg: _Agg | None,
              classified_ok: bool) -> tuple[str | None, bool]:  # fmt: skip
    """The drill-down and whether it lists exactly the runs behind the row."""
    f = q.filters
    exact = q.level == "run"
    if q.level == "step":
        # Runs containing these steps: step status / failure class are not run filters.
        f = replace(f, status=(), error_class=())
    f = replace(f, from_ns=from_ns, to_ns=to_ns)
    tags = dict(f.tags)
    for g, v in group.items():
        if g == "kind":
            exact = exact and v == "run"
            continue
        if g == "error_class":
            if q.level == "step":
                continue
            if v is None:
                f = replace(f, status=("ok",), error_class=())
                exact = exact and not classified_ok
            else:
                f = replace(f, error_class=(v,))
                exact = exact and not (agg is not None and agg.null_class_errors)
            continue
        if v is None:
            return None, False  # "no value" cannot be asked of the run list
        if g.startswith("tag."):
            tags[g[4:]] = (v,)
        else:
            f = replace(f, **{g: (v,)})
    f = replace(f, tags=tuple(sorted(tags.items())))
    qs = f.query_string()
    return "/api/v1/runs" + (f"?{qs}" if qs else ""), exact


def _header(q: MetricsQuery, plan: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": ",".join(q.kinds),
        "level": q.level,
        "from": format_timestamp(q.from_ns),
        "to": format_timestamp(q.to_ns),
        "from_ms": q.from_ns // 10**6,
        "to_ms": q.to_ns // 10**6,
        "requested": {
            "from": format_timestamp(q.requested_from_ns),
            "to": format_timestamp(q.requested_to_ns),
        },
        "group_by": list(q.group_by),
        "filters": {k: v for k, v in q.filters.to_query().items() if k not in ("from", "to")},
        "source": plan,
    }


def _order(aggs: Mapping[tuple[Any, ...], _Agg], q: MetricsQuery) -> list[tuple[Any, ...]]:
    def sort_key(k: tuple[Any, ...]) -> tuple[Any, ...]:
        return (-aggs[k].sums[0], tuple((v is None, str(v)) for v in k))

    return sorted(aggs, key=sort_key)


def summary(conn: Connection, q: MetricsQuery) -> dict[str, Any]:
    """Rows per group over the effective window: counts, rates, percentiles, tokens, drill-down."""
    tiers = _plan(q)
    segments = cover(q.from_ns, q.to_ns, sorted(tiers, reverse=True))
    by_tier: dict[int, list[tuple[int, int]]] = {}
    for tier, a, b in segments:
        by_tier.setdefault(tier, []).append((a, b))
    aggs: dict[tuple[Any, ...], _Agg] = {}
    plan = []
    for tier, ranges in sorted(by_tier.items(), reverse=True):
        cube = tiers[tier]
        for window in ranges:  # one range scan each (an OR of ranges would scan the tier)
            _read(conn, q, cube, tier, window, aggs, None, None)
        plan.append(
            {
                "cube": cube.name,
                "tier_seconds": tier,
                "buckets": sum((b - a) // (tier * _NS) for a, b in ranges),
            }
        )
    classified_ok = any(a.classified_ok for a in aggs.values())
    keys = _order(aggs, q)
    rows = []
    for key in keys[: q.limit]:
        group = _group_dict(q, key)
        row = {"group": group, **_fields(q, aggs[key])}
        row["runs_url"], row["runs_url_exact"] = _runs_url(
            q, group, q.from_ns, q.to_ns, aggs[key], classified_ok
        )
        rows.append(row)
    if not q.group_by and not rows:
        row = {"group": {}, **_fields(q, None)}
        row["runs_url"], row["runs_url_exact"] = _runs_url(q, {}, q.from_ns, q.to_ns, None, False)
        rows.append(row)
    return {**_header(q, plan), "rows": rows, "truncated": len(keys) > q.limit}


def timeseries(conn: Connection, q: MetricsQuery) -> dict[str, Any]:
    """One series per group, one point per step (dense: empty steps have count 0)."""
    assert q.step_s is not None  # noqa: S101 - parse_metrics_query sets it for timeseries
    step_ns = q.step_s * _NS
    tiers = _plan(q)
    tier = max(t for t in tiers if q.step_s % t == 0)
    cube = tiers[tier]
    points: dict[tuple[Any, ...], _Agg] = {}
    _read(conn, q, cube, tier, (q.from_ns, q.to_ns), points, q.from_ns, step_ns)
    ng = len(_names(q))
    has_class = "error_class" in q.group_by

    def split(key: tuple[Any, ...]) -> tuple[tuple[Any, ...], int]:
        series_key = key[:ng] + ((key[-1],) if has_class else ())
        return series_key, int(key[ng])

    series: dict[tuple[Any, ...], dict[int, _Agg]] = {}
    for key, agg in points.items():
        sk, t = split(key)
        series.setdefault(sk, {})[t] = agg
    totals = {sk: _Agg(sums=[sum(a.sums[0] for a in pts.values())]) for sk, pts in series.items()}
    classified_ok = any(a.classified_ok for a in points.values())
    keys = _order(totals, q)
    if not keys and not q.group_by:
        keys = [()]
    n_points = (q.to_ns - q.from_ns) // step_ns
    out = []
    for sk in keys[: q.limit]:
        group = _group_dict(q, sk)
        pts = series.get(sk, {})
        rows = []
        for i in range(n_points):
            t0 = q.from_ns + i * step_ns
            agg = pts.get(i)
            row = {"t": t0 // 10**6, "time": format_timestamp(t0), **_fields(q, agg)}
            row["runs_url"], row["runs_url_exact"] = _runs_url(q, group, t0, t0 + step_ns, agg, classified_ok)
            rows.append(row)
        out.append({"group": group, "points": rows})
    plan = [{"cube": cube.name, "tier_seconds": tier, "buckets": (q.to_ns - q.from_ns) // (tier * _NS)}]
    return {**_header(q, plan), "step_seconds": q.step_s, "step_auto": q.step_auto, "series": out,
            "truncated": len(keys) > q.limit}  # fmt: skip
