"""Regressions for ``GET /api/v1/regressions`` and ``hypermind-obs regressions``: the query, the
rollup reads, and the answer (docs/regressions.md).

The statistics are pure (:mod:`hypermindlabs.regressions`); this module is their I/O edge, above
the rollups (their reads), the store (attribution) and the statistics, so it sits with the web
layer that the CLI also uses. Per
window it makes one rollup read per cube the slices need — runs by (project, scenario, model),
by (project, scenario, model, tool) when ``tool`` is a dimension, and by (project, scenario,
model, tag) per tag key — and the analysis derives every single-dimension and pair slice from
those groups in memory. Attribution then counts the tag values and clusters of each top finding's
failing (or slow) runs: for slices of run dimensions from the tag cube, one read for all of them;
for tool or tag slices from their selected runs, through the failed-run and run-duration indexes
(:mod:`hypermindlabs.store.regression_facets`).

Windows are half-open and widened to whole hours (the rollups' hour tier: the current window is
one read, cut into parts by hour; facts are dated by their run's start), and
every drill-down URL uses them, so ``runs_url`` lists exactly the runs behind a finding's
current numbers and ``baseline_runs_url`` (or, for ``baseline=same-hours``, the list
``baseline_runs_urls``) those behind its baseline numbers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from hypermindlabs.core.errors import QueryError
from hypermindlabs.core.events import format_timestamp
from hypermindlabs.core.filters import Filters, parse_filters, parse_time
from hypermindlabs.core.sketch import RELATIVE_ACCURACY, bin_value
from hypermindlabs.regressions import (
    METRICS,
    Attribution,
    Finding,
    Params,
    SliceStats,
    Source,
    analyze,
    attribute_counts,
    slice_dict,
)
from hypermindlabs.rollups.answers import grouped, grouped_by_step
from hypermindlabs.rollups.facts import CUBES, HOUR, MEASURES, part_of
from hypermindlabs.rollups.query import MetricsQuery, plan
from hypermindlabs.store.dialect import begin_snapshot
from hypermindlabs.store.regression_facets import (
    CubeRead,
    RunSelection,
    Selection,
    cluster_examples,
    facet_counts,
    sample_keep,
    selected_runs_of,
    tag_cube_answers,
)
from hypermindlabs.store.rollup_reads import Agg as GroupAgg

__all__ = ["RegressionsQuery", "parse_regressions_query", "regressions", "DIMENSIONS", "BASELINES"]

DIMENSIONS: tuple[str, ...] = ("project", "model", "tool", "scenario")
BASELINES: tuple[str, ...] = ("previous", "same-hours")
_NS = 10**9
_HOUR_NS = 3600 * _NS
_DAY_NS = 24 * _HOUR_NS
DEFAULT_WINDOW_NS = _DAY_NS
DEFAULT_BASELINE_NS = 7 * _DAY_NS
_OWN = ("baseline_from", "baseline_to", "baseline", "min_runs", "alpha", "metrics", "dimensions", "limit")
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_RUN_DIMS = ("project", "scenario", "model")
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_ATTRIBUTED = 10  # findings (roots) that get an attribution
#: The current window is read in this many parts: a finding's score is the median of theirs.
PARTS = 6
#: Below this persistence a finding is a burst (confined to a few parts of the window): listed, but
#: marked ``transient`` — bursts are what triage's surging clusters and the alerts are for.
TRANSIENT = 0.25
_M = {m: i for i, m in enumerate(MEASURES)}


def _parallel(tasks: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run the reads of one answer, in order. (Side by side on a thread pool they were measured no
    faster on the shared 2-core machine, wall 1.70 s against 1.56 s sequential, interleaved: kept
    sequential; the reads are listed first, so they can be batched or run elsewhere in one place.)"""
    return [t() for t in tasks]


@dataclass(frozen=True)
class RegressionsQuery:
    filters: Filters  # the population (no time range)
    from_ns: int
    to_ns: int
    baseline_from_ns: int
    baseline_to_ns: int
    baseline: str
    baseline_windows: tuple[tuple[int, int], ...]
    params: Params
    metrics: tuple[str, ...]
    dimensions: tuple[str, ...]
    limit: int = 50


def _floor(ns: int) -> int:
    return ns - ns % _HOUR_NS


def _ceil(ns: int) -> int:
    return -(-ns // _HOUR_NS) * _HOUR_NS


def same_hours(from_ns: int, to_ns: int, base_from: int, base_to: int) -> list[tuple[int, int]]:
    """The parts of the baseline at the hours of day the current window covers: the current
    window shifted back by whole days, within the baseline, merged.

    >>> h = 3600 * 10**9
    >>> [(a // h, b // h) for a, b in same_hours(10 * 24 * h + 9 * h, 10 * 24 * h + 17 * h, 8 * 24 * h, 10 * 24 * h)]
    [(201, 209), (225, 233)]
    """
    out: list[tuple[int, int]] = []
    k = 1
    while to_ns - k * _DAY_NS > base_from:
        a, b = max(from_ns - k * _DAY_NS, base_from), min(to_ns - k * _DAY_NS, base_to)
        if a < b:
            out.append((a, b))
        k += 1
    out.sort()
    merged: list[tuple[int, int]] = []
    for a, b in out:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _split(raw: Sequence[str]) -> list[str]:
    return [v.strip() for item in raw for v in item.split(",") if v.strip()]


def _number(raw: Sequence[str], name: str, kind: type, lo: float, hi: float) -> Any:
    try:
        value = kind(raw[-1])
    except ValueError as exc:
        raise QueryError(name, f"must be {'an integer' if kind is int else 'a number'}") from exc
    if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
        raise QueryError(name, f"must be between {lo:g} and {hi:g}")
    return value


def parse_regressions_query(args: Mapping[str, Sequence[str]], *, now_ns: int) -> RegressionsQuery:
    """Parse the query parameters of ``/api/v1/regressions``; raise :class:`QueryError` naming the field."""
    args = dict(args)
    own = {k: args.pop(k) for k in _OWN if k in args}
    for name in ("status", "error_class", "cluster", "step", "group_by", "kind"):
        if name in args:
            raise QueryError(name, "not a regressions parameter: regressions compare all runs of each slice")
    f = parse_filters(args, now_ns=now_ns)
    to_ns = _ceil(f.to_ns if f.to_ns is not None else now_ns)
    from_ns = _floor(f.from_ns if f.from_ns is not None else to_ns - DEFAULT_WINDOW_NS)
    if to_ns <= from_ns:
        raise QueryError("from", "must be before to")
    b_to = _ceil(parse_time(own["baseline_to"][-1], "baseline_to", now_ns=now_ns)) if "baseline_to" in own else from_ns
    if "baseline_from" in own:
        b_from = _floor(parse_time(own["baseline_from"][-1], "baseline_from", now_ns=now_ns))
    else:
        b_from = b_to - DEFAULT_BASELINE_NS
    if b_to <= b_from:
        raise QueryError("baseline_from", "must be before baseline_to")
    if b_to > from_ns:
        raise QueryError("baseline_to", "must not be after from: the baseline precedes the current window")
    baseline = own.get("baseline", ["previous"])[-1]
    if baseline not in BASELINES:
        raise QueryError("baseline", f"must be one of {', '.join(BASELINES)}, got {baseline[:32]!r}")
    windows = [(b_from, b_to)] if baseline == "previous" else same_hours(from_ns, to_ns, b_from, b_to)
    if not windows:
        raise QueryError("baseline", "same-hours: the baseline window holds none of the current window's hours")
    metrics = tuple(dict.fromkeys(_split(own["metrics"]))) if "metrics" in own else METRICS
    for m in metrics:
        if m not in METRICS:
            raise QueryError("metrics", f"must be among {', '.join(METRICS)}, got {m[:40]!r}")
    if not metrics:
        raise QueryError("metrics", "name at least one metric")
    dims = tuple(dict.fromkeys(_split(own["dimensions"]))) if "dimensions" in own else DIMENSIONS
    for d in dims:
        if d.startswith("tag."):
            if not _TAG_KEY.fullmatch(d[4:]):
                raise QueryError("dimensions", f"bad tag key in {d[:70]!r}")
        elif d not in DIMENSIONS:
            raise QueryError("dimensions", f"must be among {', '.join(DIMENSIONS)} or tag.<key>, got {d[:32]!r}")
    if len([d for d in dims if d.startswith("tag.")]) > 8:
        raise QueryError("dimensions", "at most 8 tag keys")
    params = Params()
    if "min_runs" in own:
        params = replace(params, min_runs=_number(own["min_runs"], "min_runs", int, 1, 10**7))
    if "alpha" in own:
        params = replace(params, alpha=_number(own["alpha"], "alpha", float, 1e-12, 0.5))
    limit = _number(own["limit"], "limit", int, 1, 1000) if "limit" in own else 50
    return RegressionsQuery(
        filters=replace(f, from_ns=None, to_ns=None), from_ns=from_ns, to_ns=to_ns, baseline_from_ns=b_from,
        baseline_to_ns=b_to, baseline=baseline, baseline_windows=tuple(windows), params=params, metrics=metrics,
        dimensions=dims, limit=limit,
    )  # fmt: skip


# -- reading ------------------------------------------------------------------------------------
def _counts(bins: dict[int, int]) -> dict[int, int]:
    """A copy without empty bins; ints as they come (the store sums bin counts as ints), a
    conversion only for what is not (the dominant cost of this read, so the common case is a copy)."""
    values = bins.values()
    if 0 not in values and set(map(type, values)) <= {int} and set(map(type, bins)) <= {int}:
        return dict(bins)
    return {int(b): int(k) for b, k in bins.items() if k}


def _stats(agg: GroupAgg) -> SliceStats:
    s = [int(v) for v in agg.sums]  # PostgreSQL sums are numeric
    tokens = s[_M["input_tokens"]] + s[_M["output_tokens"]] + s[_M["input_tokens_proxy"]] + s[_M["output_tokens_proxy"]]
    return SliceStats(
        n=s[_M["n"]], errors=int(agg.errors),
        classes={str(c): int(k) for c, k in agg.classes.items() if k},
        bins=_counts(agg.bins),
        tokens=tokens, tokens_sq=s[_M["tokens_sq"]], tool_calls=s[_M["tool_calls"]],
        tool_calls_sq=s[_M["tool_calls_sq"]],
    )  # fmt: skip


def parts_of(from_ns: int, to_ns: int, n: int = PARTS) -> tuple[int, int]:
    """(step, count): the current window cut into at most ``n`` parts of whole hours."""
    hours = (to_ns - from_ns) // _HOUR_NS
    step = -(-hours // max(1, min(n, hours)))
    return step * _HOUR_NS, -(-hours // step)


def _read(store: Any, q: RegressionsQuery, group_by: tuple[str, ...]) -> tuple[Source, list[dict[str, Any]]]:
    mq = MetricsQuery(
        filters=q.filters, kinds=("run",), group_by=group_by, from_ns=q.from_ns, to_ns=q.to_ns,
        requested_from_ns=q.from_ns, requested_to_ns=q.to_ns,
    )  # fmt: skip
    step_ns, n_parts = parts_of(q.from_ns, q.to_ns)
    # The current window in one read, keyed by part (the last key element), at the hour tier — or,
    # when filters need a cube kept only at finer tiers (tags with tools, say), the finest such tier
    # (windows and parts are whole hours, so any finer tier covers them exactly).
    tiers = plan(mq)
    tier = HOUR if HOUR in tiers else max(t for t in tiers if t <= HOUR)
    by_part = grouped_by_step(store, mq, tier, (q.from_ns, q.to_ns), step_ns)
    parts: list[dict[tuple[Any, ...], SliceStats]] = [{} for _ in range(n_parts)]
    for key, agg in by_part.items():
        parts[int(key[-1])][key[:-1]] = _stats(agg)
    used: list[dict[str, Any]] = [{"group_by": list(group_by), "window": "current", "tier_seconds": tier,
                                   "buckets": (q.to_ns - q.from_ns) // (tier * 10**9), "parts": n_parts}]  # fmt: skip
    base, p = grouped(store, mq, list(q.baseline_windows))
    used += [{"group_by": list(group_by), "window": "baseline", **x} for x in p]
    member = len(group_by) > len(_RUN_DIMS)
    # With parts, the analysis sums them into the current window (one array sum, not a merge here).
    source = Source(group_by, {} if n_parts > 1 else parts[0], {k: _stats(a) for k, a in base.items()},
                    member=member, parts=tuple(parts) if n_parts > 1 else ())  # fmt: skip
    return source, used


def read_sources(store: Any, q: RegressionsQuery) -> tuple[list[Source], list[dict[str, Any]]]:
    """The rollup reads the slices are derived from (per cube: the current window's parts, the baseline)."""
    reads: list[tuple[str, ...]] = [_RUN_DIMS]
    reads += [(*_RUN_DIMS, d) for d in q.dimensions if d == "tool" or d.startswith("tag.")]
    sources, plan = [], []
    # Every read on one reader: one snapshot for the whole analysis, and each cube's matching
    # slices read once for both windows (the reader keeps them per planned read).
    with store.rollup_reader() as reader:
        one = _OneReader(reader)
        for source, p in _parallel([functools.partial(_read, one, q, group_by) for group_by in reads]):
            sources.append(source)
            plan += p
    return sources, plan


class _OneReader:
    """A rollup source whose every ``rollup_reader()`` is one open reader."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    @contextlib.contextmanager
    def rollup_reader(self) -> Iterator[Any]:
        yield self._reader


# -- the answer ---------------------------------------------------------------------------------
def _finding_id(f: Finding) -> str:
    raw = orjson.dumps([list(map(list, f.slice)), f.metric, f.failure_class])
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def _slice_filters(q: RegressionsQuery, key: Sequence[tuple[str, str]], f: Finding) -> Filters:
    flt = q.filters
    tags = dict(flt.tags)
    for dim, value in key:
        if dim.startswith("tag."):
            tags[dim[4:]] = (value,)
        else:
            flt = replace(flt, **{dim: (value,)})  # type: ignore[arg-type]  # a dimension field
    flt = replace(flt, tags=tuple(sorted(tags.items())), extra={})
    if f.metric == "failure_rate":
        flt = replace(flt, status=("error",))
    elif f.metric == "failure_class_share":
        flt = replace(flt, status=("error",), error_class=(f.failure_class or "unknown",))
    return flt


@functools.lru_cache(maxsize=256)
def _window_query(window: tuple[int, int]) -> str:
    return Filters(from_ns=window[0], to_ns=window[1]).query_string()


def _urls(flt: Filters, windows: Sequence[tuple[int, int]]) -> list[str]:
    """``/api/v1/runs`` for ``flt`` over each window: the filters encoded once, the windows
    appended (they come last in :meth:`Filters.to_query`, so the URL is the same)."""
    base = "/api/v1/runs?" + replace(flt, from_ns=None, to_ns=None).query_string()
    sep = "&" if not base.endswith("?") else ""
    return [base + sep + _window_query(w) for w in windows]


def _threshold_ms(f: Finding, bin_ids: Sequence[int]) -> float | None:
    # Runs in bins above the baseline p95's bin last longer than that bin's upper edge.
    if f.metric != "p95_latency_ms":
        return None
    return bin_value(int(bin_ids[f.extra["threshold_index"]])) * (1 + _GAMMA) / 2


def _selection(f: Finding, bin_ids: Sequence[int]) -> Selection | None:
    """What a finding's attribution counts: the slice's failing runs (with the class, for class
    shares) or its slow runs (bins above the baseline p95's); None for the metrics without one."""
    if f.metric not in ("failure_rate", "failure_class_share", "p95_latency_ms"):
        return None
    dims = tuple((d, v) for d, v in f.slice if d in _RUN_DIMS)
    members = [(d, v) for d, v in f.slice if d not in _RUN_DIMS]
    member = members[0] if members else None  # the analysis pairs members with run dimensions only
    if f.metric == "p95_latency_ms":
        return Selection(dims, member, failed=False, above_bin=int(bin_ids[f.extra["threshold_index"]]))
    return Selection(dims, member, failure_class=f.failure_class if f.metric == "failure_class_share" else None)


def _selected(f: Finding) -> tuple[int, int]:
    """How many runs the selection holds, current and baseline (from the analysis' own counts)."""
    if f.metric == "p95_latency_ms":
        return int(f.extra["above_baseline_p95"]), int(f.extra["baseline_above_p95"])
    return round(f.current_value * f.current_n), round(f.baseline_value * f.baseline_n)


def _cube(name: str) -> CubeRead:
    cube = next(c for c in CUBES if c.level == "run" and c.name == name)
    return CubeRead(cube.name, part_of(cube, None), cube.tiers)


@dataclass(frozen=True)
class Got:
    """A finding's attribution counts: tag values and clusters among the ``n_c`` (current) and
    ``n_b`` (baseline) selected runs counted. ``sample`` says when those are a sample of a member
    slice's selection (:data:`SAMPLE_RUNS`): per window, runs counted and selected, and the 95 %
    margin of any share shown; None when every selected run was counted."""

    cur: Counter
    n_c: int
    base: Counter
    n_b: int
    sample: dict[str, Any] | None = None


#: At most about this many of a member slice's selected runs are read per window (current; the
#: baseline's windows together) for its attribution: beyond, a deterministic sample of them
#: (store.regression_facets.sample_keep). A share from n of N runs is then within
#: ±1.96·√(0.25/n·(N−n)/(N−1)) of the whole selection's, 95 % of the time: ±2.2 points at 2,000
#: runs; the lift (≥ 0.1 to be shown) ranks, so a sample ranks as the whole selection would.
SAMPLE_RUNS = 2000


def _margin(n: int, total: int) -> float:
    """The 95 % margin of a share estimated from ``n`` of ``total`` runs (worst case, p = 0.5)."""
    if n <= 0 or n >= total:
        return 0.0
    return 1.96 * math.sqrt(0.25 / n * (total - n) / (total - 1))


def _raw_counts(store: Any, q: RegressionsQuery, findings: Sequence[Finding], bin_ids: Sequence[int], *,
                sample_runs: int = SAMPLE_RUNS) -> list[Got]:  # fmt: skip
    """Member slices' attribution counts from their selected runs (the cubes keep a tool or tag
    jointly with the other members only per run): the failing or slow runs, current and baseline,
    read through the failed-run and run-duration indexes — all findings' in one statement per
    window and index — and each window's a deterministic sample when the analysis counted more
    than ``sample_runs`` of them."""
    sels, selected = [], []
    for f in findings:
        threshold_ms = _threshold_ms(f, bin_ids)
        sels.append(RunSelection(
            _slice_filters(q, f.slice, f), failed=f.metric != "p95_latency_ms",
            failure_class=f.failure_class if f.metric == "failure_class_share" else None,
            min_duration_ns=None if threshold_ms is None else int(threshold_ms * 1e6),
        ))  # fmt: skip
        selected.append(_selected(f))
    keeps_c = [sample_keep(n_c, sample_runs) for n_c, _ in selected]
    keeps_b = [sample_keep(n_b, sample_runs) for _, n_b in selected]
    with store.read() as conn:
        conn = begin_snapshot(conn)
        cur_rows = selected_runs_of(conn, sels, [(q.from_ns, q.to_ns)], keeps_c)
        base_rows = selected_runs_of(conn, sels, q.baseline_windows, keeps_b)

    def counts(rows: Sequence[tuple[int, str, str | None]]) -> Counter:
        c: Counter = Counter()
        for _, tags, cluster in rows:
            for k, v in (orjson.loads(tags) or {}).items():
                c["tag", k, str(v)] += 1
            if cluster is not None:
                c["cluster", "cluster", cluster] += 1
        return c

    out = []
    for i, (n_sel_c, n_sel_b) in enumerate(selected):
        n_c, n_b = len(cur_rows[i]), len(base_rows[i])
        sample = None
        if keeps_c[i] is not None or keeps_b[i] is not None:
            sample = {
                "current": {"counted": n_c, "selected": n_sel_c, "sampled": keeps_c[i] is not None},
                "baseline": {"counted": n_b, "selected": n_sel_b, "sampled": keeps_b[i] is not None},
                "share_margin_95": max(_margin(n_c, n_sel_c) if keeps_c[i] is not None else 0.0,
                                       _margin(n_b, n_sel_b) if keeps_b[i] is not None else 0.0),
            }  # fmt: skip
        out.append(Got(counts(cur_rows[i]), n_c, counts(base_rows[i]), n_b, sample))
    return out


def attribution_counts(store: Any, q: RegressionsQuery, findings: Sequence[Finding],
                       bin_ids: Sequence[int], *, sample_runs: int = SAMPLE_RUNS) -> list[Got | None]:  # fmt: skip
    """Per finding, its attribution's counts (None: a metric without attribution). Slices of run
    dimensions: from the tag cube, one read for all of them; member slices: from their raw runs,
    one read per window and index for all of them (sampled beyond ``sample_runs`` selected runs
    a window)."""
    sels = [_selection(f, bin_ids) for f in findings]
    cubed = [i for i, s in enumerate(sels) if s is not None and tag_cube_answers(q.filters, s)]
    out: list[Got | None] = [None] * len(findings)
    if cubed:
        with store.read() as conn:
            conn = begin_snapshot(conn)
            todo = [s for s in sels if s is not None and tag_cube_answers(q.filters, s)]
            counts = facet_counts(conn, todo, [[(q.from_ns, q.to_ns)], list(q.baseline_windows)], filters=q.filters,
                                  tag_cube=_cube("tag"))  # fmt: skip
        for i, (cur, base) in zip(cubed, counts, strict=True):
            n_c, n_b = _selected(findings[i])
            out[i] = Got(cur, n_c, base, n_b)
    raw = [i for i, sel in enumerate(sels) if sel is not None and i not in cubed]
    if raw:
        got = _raw_counts(store, q, [findings[i] for i in raw], bin_ids, sample_runs=sample_runs)
        for i, g in zip(raw, got, strict=True):
            out[i] = g
    return out


def _attribution_rows(attrs: Sequence[Attribution], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    out = []
    for a in attrs:
        label = labels.get(a.value, a.value) if a.kind == "cluster" else f"{a.key}={a.value}"
        out.append({"kind": a.kind, "key": a.key, "value": a.value, "label": label,
                    "baseline_share": a.baseline_share, "current_share": a.current_share, "lift": a.lift})  # fmt: skip
    return out


def _cluster_labels(store: Any, q: RegressionsQuery, ids: Sequence[str]) -> dict[str, str]:
    """A label per cluster, from one failed run of it in the current window (an index seek each)."""
    if not ids:
        return {}
    with store.read() as conn:
        rows = cluster_examples(conn, ids, (q.from_ns, q.to_ns))
    return {cid: _cluster_label(cid, row) for cid, row in rows.items()}


def _cluster_label(cluster_id: str, row: Mapping[str, Any]) -> str:
    from hypermindlabs.triage.classify import classify_failure

    f = classify_failure(kind="run", error_type=row["error_type"], error_message=row["error_message"],
                         error_class=row["error_class"], tool=row["tool"], model=row["model"])  # fmt: skip
    return f.label if f.cluster_id == cluster_id else f"{row['failure_class']} · {cluster_id}"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _finding(q: RegressionsQuery, f: Finding, bin_ids: Sequence[int]) -> dict[str, Any]:
    flt = _slice_filters(q, f.slice, f)
    out: dict[str, Any] = {
        "id": _finding_id(f),
        "slice": slice_dict(f.slice),
        "metric": f.metric,
    }
    if f.failure_class is not None:
        out["failure_class"] = f.failure_class
    out.update({
        "baseline_value": _num(f.baseline_value), "current_value": _num(f.current_value),
        "change_abs": _num(f.change_abs), "change_rel": _num(f.change_rel),
        "p_value": f.p_value, "q_value": f.q_value, "test": f.test,
        "baseline_n": f.baseline_n, "current_n": f.current_n,
        "impact": _num(f.impact), "impact_unit": f.impact_unit,
        "score": _num(f.score), "score_unit": "runs_affected_per_hour",
        "persistence": f.persistence, "transient": f.persistence < TRANSIENT,
    })  # fmt: skip
    if f.metric in ("failure_rate", "failure_class_share"):
        out["current_count"] = round(f.current_value * f.current_n)
        out["baseline_count"] = round(f.baseline_value * f.baseline_n)
    if f.metric == "p95_latency_ms":
        out["threshold_ms"] = _threshold_ms(f, bin_ids)
        out["above_threshold"] = f.extra["above_baseline_p95"]
        out["expected_above_threshold"] = f.extra["expected_above"]
        out["extra_latency_ms_x_runs"] = f.extra["extra_latency_ms_x_runs"]
    out["runs_url"], *urls = _urls(flt, [(q.from_ns, q.to_ns), *q.baseline_windows])
    out["baseline_runs_url"] = urls[-1] if q.baseline == "same-hours" else urls[0]
    if q.baseline == "same-hours":
        out["baseline_runs_urls"] = urls
    return out


def regressions(store: Any, q: RegressionsQuery) -> dict[str, Any]:
    """The contract answer (CONTRACTS.md, docs/regressions.md): findings most impactful first."""
    sources, plan = read_sources(store, q)
    hours = (q.to_ns - q.from_ns) / _HOUR_NS
    analysis = analyze(sources, params=q.params, current_hours=hours, metrics=q.metrics, dimensions=q.dimensions)
    bin_ids = analysis.bin_ids
    rows = [_finding(q, f, bin_ids) for f in analysis.findings[: q.limit]]
    # The top findings' attribution: counts from the tag and full cubes, for all of them at once.
    counts = attribution_counts(store, q, analysis.findings[:_ATTRIBUTED], bin_ids)
    attributions = [attribute_counts(c.cur, c.n_c, c.base, c.n_b) if c is not None else [] for c in counts]
    cluster_ids = sorted({a.value for attr in attributions for a in attr if a.kind == "cluster"})
    labels = _cluster_labels(store, q, cluster_ids)
    findings = []
    for i, (f, row) in enumerate(zip(analysis.findings[: q.limit], rows, strict=True)):
        row["attribution"] = _attribution_rows(attributions[i], labels) if i < len(attributions) else []
        got = counts[i] if i < len(counts) else None
        row["attribution_sample"] = got.sample if got is not None else None
        row["folded"] = [
            {k: v for k, v in _finding(q, g, bin_ids).items() if k != "baseline_runs_urls"} for g in f.folded
        ]
        findings.append(row)
    return {
        "from": format_timestamp(q.from_ns), "to": format_timestamp(q.to_ns),
        "from_ms": q.from_ns // 10**6, "to_ms": q.to_ns // 10**6,
        "baseline_from": format_timestamp(q.baseline_from_ns), "baseline_to": format_timestamp(q.baseline_to_ns),
        "baseline_from_ms": q.baseline_from_ns // 10**6, "baseline_to_ms": q.baseline_to_ns // 10**6,
        "baseline": q.baseline,
        "baseline_windows": [{"from": format_timestamp(a), "to": format_timestamp(b), "from_ms": a // 10**6,
                              "to_ms": b // 10**6} for a, b in q.baseline_windows],
        "tests": analysis.tests,
        "slices": analysis.slices,
        "params": q.params.to_dict(),
        "metrics": list(q.metrics),
        "dimensions": list(q.dimensions),
        "filters": {k: v for k, v in q.filters.to_query().items() if k not in ("from", "to")},
        "findings": findings,
        "truncated": len(analysis.findings) > q.limit,
        "source": plan,
    }  # fmt: skip
