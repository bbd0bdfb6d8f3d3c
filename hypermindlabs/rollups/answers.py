"""Metrics answers: summary rows and timeseries, shaped from the aggregates with their drill-down.

Every row's ``runs_url`` lists the runs behind its numbers over the *effective* window (see
:mod:`hypermindlabs.rollups.query`), and says whether that list is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, Protocol

from hypermindlabs.core.errors import QueryError
from hypermindlabs.core.events import format_timestamp
from hypermindlabs.core.filters import Filters
from hypermindlabs.core.sketch import quantiles
from hypermindlabs.rollups.facts import MEASURES, Cube, part_of
from hypermindlabs.rollups.query import MetricsQuery, cover, member_keys, plan
from hypermindlabs.store.rollup_reads import Agg, CellQuery, RollupReader

__all__ = ["summary", "timeseries", "cell_query", "RollupSource", "QUANTILES", "grouped", "grouped_by_step"]

QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
_NS = 10**9


class RollupSource(Protocol):
    """Where the cells are summed (the event store implements it): one reader, one snapshot, per answer."""

    def rollup_reader(self) -> AbstractContextManager[RollupReader]: ...


def cell_query(q: MetricsQuery, cube: Cube) -> CellQuery:
    """The store's description of reading ``cube`` for ``q``."""
    kinds: tuple[str | None, ...] = q.kinds if q.level == "step" else (None,)
    return CellQuery(
        level=q.level, kinds=q.kinds, group_by=q.group_by, filters=q.filters, cube=cube.name,
        members=cube.members, member_keys=tuple(member_keys(q)), parts={k: part_of(cube, k) for k in kinds},
    )  # fmt: skip


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


def _fields(q: MetricsQuery, agg: Agg | None) -> dict[str, Any]:
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


def _runs_url(q: MetricsQuery, group: Mapping[str, Any], from_ns: int, to_ns: int, agg: Agg | None,
              classified_ok: bool) -> tuple[str | None, bool]:  # fmt: skip
    """The drill-down and whether it lists exactly the runs behind the row."""
    base, exact = _drill(q, group, agg, classified_ok)
    return (None if base is None else _with_window(base, _window_query(from_ns, to_ns))), exact


def _drill(q: MetricsQuery, group: Mapping[str, Any], agg: Agg | None,
           classified_ok: bool) -> tuple[str | None, bool]:  # fmt: skip
    """The drill-down's URL without its window (see :func:`_time_query`), and whether it is exact.

    Split from the window so a timeseries builds each series' URL once, not once per point.
    """
    f = q.filters
    exact = q.level == "run"
    if q.level == "step":
        # Runs containing these steps: step status / failure class are not run filters.
        f = replace(f, status=(), error_class=())
    f = replace(f, from_ns=None, to_ns=None)
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
            f = replace(f, **{g: (v,)})  # type: ignore[arg-type]  # g is a dimension name here
    f = replace(f, tags=tuple(sorted(tags.items())))
    qs = f.query_string()
    return "/api/v1/runs" + (f"?{qs}" if qs else ""), exact


def _window_query(from_ns: int, to_ns: int) -> str:
    """A drill-down's window parameters (they come last, as in :meth:`Filters.to_query`)."""
    return Filters(from_ns=from_ns, to_ns=to_ns).query_string()


def _with_window(base: str, window: str) -> str:
    return base + ("&" if "?" in base else "?") + window


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


def _order(aggs: Mapping[tuple[Any, ...], Agg], q: MetricsQuery) -> list[tuple[Any, ...]]:
    def sort_key(k: tuple[Any, ...]) -> tuple[Any, ...]:
        return (-aggs[k].sums[0], tuple((v is None, str(v)) for v in k))

    return sorted(aggs, key=sort_key)


def grouped(
    store: RollupSource, q: MetricsQuery, windows: Sequence[tuple[int, int]]
) -> tuple[dict[tuple[Any, ...], Agg], list[dict[str, Any]]]:
    """Per group of ``q.group_by``: summed measures, failed runs per error class and latency bins
    over the union of ``windows`` (disjoint, minute-aligned), and the plan followed.

    The summary's read (one window), and for callers computing their own statistics (the
    regressions): one read per cube, however many tiers and slices they derive from the groups.
    """
    tiers = plan(q)
    by_tier: dict[int, list[tuple[int, int]]] = {}
    for a0, b0 in windows:
        for tier, a, b in cover(a0, b0, sorted(tiers, reverse=True)):
            by_tier.setdefault(tier, []).append((a, b))
    aggs: dict[tuple[Any, ...], Agg] = {}
    reads = [(cell_query(q, tiers[tier]), tier, ranges) for tier, ranges in sorted(by_tier.items(), reverse=True)]
    with store.rollup_reader() as reader:
        reader.read_tiers(reads, aggs)  # the tiers of one cube in one statement, a range scan each
    used = [{"cube": tiers[tier].name, "tier_seconds": tier, "buckets": sum((b - a) // (tier * _NS) for a, b in ranges)}
            for _, tier, ranges in reads]  # fmt: skip
    return aggs, used


def grouped_by_step(
    store: RollupSource, q: MetricsQuery, tier: int, window: tuple[int, int], step_ns: int
) -> dict[tuple[Any, ...], Agg]:
    """Like :func:`grouped`, keyed by group *and step* (the step's index from the window's start,
    appended to the group key), read at one tier: ``window`` and ``step_ns`` must be whole buckets
    of it. One read however many steps."""
    cube = plan(q).get(tier)
    if cube is None:
        raise ValueError(f"no cube answers this query at the {tier} s tier")
    aggs: dict[tuple[Any, ...], Agg] = {}
    with store.rollup_reader() as reader:
        reader.read(cell_query(q, cube), tier, [window], aggs, origin_ns=window[0], step_ns=step_ns)
    return aggs


def summary(store: RollupSource, q: MetricsQuery) -> dict[str, Any]:
    """Rows per group over the effective window: counts, rates, percentiles, tokens, drill-down."""
    aggs, sources = grouped(store, q, [(q.from_ns, q.to_ns)])
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
    return {**_header(q, sources), "rows": rows, "truncated": len(keys) > q.limit}


def timeseries(store: RollupSource, q: MetricsQuery) -> dict[str, Any]:
    """One series per group, one point per step (dense: empty steps have count 0)."""
    assert q.step_s is not None  # noqa: S101 - parse_metrics_query sets it for timeseries
    step_ns = q.step_s * _NS
    tiers = plan(q)
    tier = max(t for t in tiers if q.step_s % t == 0)
    cube = tiers[tier]
    points: dict[tuple[Any, ...], Agg] = {}
    with store.rollup_reader() as reader:
        reader.read(cell_query(q, cube), tier, [(q.from_ns, q.to_ns)], points, origin_ns=q.from_ns, step_ns=step_ns)
    ng = len(_names(q))
    has_class = "error_class" in q.group_by

    def split(key: tuple[Any, ...]) -> tuple[tuple[Any, ...], int]:
        series_key = key[:ng] + ((key[-1],) if has_class else ())
        return series_key, int(key[ng])

    series: dict[tuple[Any, ...], dict[int, Agg]] = {}
    for key, agg in points.items():
        sk, t = split(key)
        series.setdefault(sk, {})[t] = agg
    totals = {sk: Agg(sums=[sum(a.sums[0] for a in pts.values())]) for sk, pts in series.items()}
    classified_ok = any(a.classified_ok for a in points.values())
    keys = _order(totals, q)
    if not keys and not q.group_by:
        keys = [()]
    n_points = (q.to_ns - q.from_ns) // step_ns
    kept = min(len(keys), q.limit)
    if q.max_points is not None and kept * n_points > q.max_points:
        raise QueryError(
            "step" if n_points > q.max_points else "limit",
            f"this answer would hold {kept} series × {n_points} points = {kept * n_points}, over the "
            f"{q.max_points} allowed (HYPERMIND_QUERY_MAX_POINTS); narrow the query: a lower limit (fewer "
            "series), a larger step, a shorter window (from/to), or more filters",
        )
    starts = [q.from_ns + i * step_ns for i in range(n_points)]
    times = [(t0 // 10**6, format_timestamp(t0), _window_query(t0, t0 + step_ns)) for t0 in starts]
    out = []
    for sk in keys[: q.limit]:
        group = _group_dict(q, sk)
        pts = series.get(sk, {})
        base, exact_empty = _drill(q, group, None, classified_ok)
        by_class = q.level == "run" and group.get("error_class") is not None
        rows = []
        for i, (t_ms, time_text, window) in enumerate(times):
            point = pts.get(i)
            row = {"t": t_ms, "time": time_text, **_fields(q, point)}
            # Of the aggregate, only an error class group's unclassified errors make it inexact.
            exact = exact_empty and not (point is not None and by_class and point.null_class_errors)
            row["runs_url"] = None if base is None else _with_window(base, window)
            row["runs_url_exact"] = exact
            rows.append(row)
        out.append({"group": group, "points": rows})
    sources = [{"cube": cube.name, "tier_seconds": tier, "buckets": (q.to_ns - q.from_ns) // (tier * _NS)}]
    return {**_header(q, sources), "step_seconds": q.step_s, "step_auto": q.step_auto, "series": out,
            "truncated": len(keys) > q.limit}  # fmt: skip
