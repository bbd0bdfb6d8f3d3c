"""Failure triage against the store: classification at ingest, clusters with trends, reclassify.

The pure core (taxonomy, templates, cluster ids, hints) is :mod:`hypermindlabs.triage.classify`;
this module applies it to stored events, read through the :class:`FailureSource` protocol the
store implements (``store/failures.py`` and ``store/attribution.py`` hold the SQL), so triage
imports no I/O. Every failed step is classified from its own error and
stored dimensions; a failed run carries the class and cluster of its root cause
(:mod:`hypermindlabs.triage.attribution`: a failed step, or its own error when none failed).

Counting (docs/triage.md): a cluster reports ``failed_runs`` (runs attributed to it: each failed
run in exactly one cluster), ``recovered_runs`` (runs that ended ok with a failed step in it) and
``failed_steps``; ``GET /api/v1/runs?cluster=<id>&status=error`` (the ``runs_url``) lists exactly
the failed runs, ``status=ok`` (``recovered_runs_url``) the recovered ones.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from hypermindlabs.core.events import format_timestamp
from hypermindlabs.core.filters import Filters
from hypermindlabs.triage.attribution import root_cause
from hypermindlabs.triage.classify import ALGORITHM_VERSION, Failure, classify_failure, cluster_state

__all__ = [
    "enrich", "attribute", "relabel", "cluster_report", "reclassify", "ClusterQuery", "FailureSource", "SORTS",
    "default_step_ns",
]  # fmt: skip

CONCENTRATION_TAGS: tuple[str, ...] = ("release", "env")


def _classify_row(row: Any) -> Failure:
    return classify_failure(
        kind=row["kind"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        error_class=row["error_class"],
        tool=row["tool"],
        model=row["model"],
    )


def enrich(row: Mapping[str, Any]) -> dict[str, Any]:
    """The store's enricher: failure class and cluster id of a failed event row.

    It reads the stored values (after the event inherited its run's dimensions); the store
    classifies again any child whose dimensions are filled in later, so the stored cluster is
    the same in whatever order and batches a run's events arrive.
    """
    if row["status"] != "error":
        return {}
    f = _classify_row(row)
    return {"failure_class": f.failure_class, "cluster_id": f.cluster_id}


SORTS: tuple[str, ...] = ("failed_runs", "growth", "newest")
HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS
MAX_TREND_POINTS = 500


def default_step_ns(span_ns: int) -> int:
    """Trend step when the caller sets none: hours up to a two-day window, days beyond.

    >>> default_step_ns(DAY_NS) == HOUR_NS, default_step_ns(7 * DAY_NS) == DAY_NS
    (True, True)
    """
    return HOUR_NS if span_ns <= 2 * DAY_NS else DAY_NS


def attribute(run: Mapping[str, Any], children: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The store's attributor: class and cluster of a failed run's root cause (triage.attribution).

    A step's are its stored ones; the run's own error is classified here (the run row's stored
    values may be a step's from an earlier attribution).
    """
    root = root_cause(run, children)
    if root is run:
        return enrich(dict(run))
    return {"failure_class": root["failure_class"], "cluster_id": root["cluster_id"]}


@dataclass(frozen=True)
class ClusterQuery:
    """What ``GET /api/v1/failures/clusters`` asks for (parsed by :mod:`hypermindlabs.web.params`).

    ``step_ns``: trend buckets aligned to multiples of the step since the epoch (UTC hours or
    days); ``buckets`` (legacy): that many equal buckets from ``from`` instead, when no step is set.
    """

    filters: Filters
    from_ns: int
    to_ns: int
    buckets: int | None = None
    samples: int = 5
    step_ns: int | None = None
    limit: int = 100
    min_runs: int = 1
    sort: str = "failed_runs"


@dataclass
class _Cluster:
    failed: set[str] = field(default_factory=set)
    recovered: set[str] = field(default_factory=set)
    steps: int = 0
    prev_failed: set[str] = field(default_factory=set)
    prev_recovered: set[str] = field(default_factory=set)
    prev_steps: int = 0
    example: Any = None  # a failed event of the cluster: a step if any, else a run's own error
    tools: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _buckets(q: ClusterQuery) -> list[int]:
    """Bucket starts (ns) of the trend; the first may start before ``from`` (aligned steps)."""
    if q.step_ns is None:
        n = q.buckets or 24
        width = max(1, math.ceil((q.to_ns - q.from_ns) / n))
        return [q.from_ns + i * width for i in range(n)]
    first = q.from_ns - q.from_ns % q.step_ns
    return list(range(first, q.to_ns, q.step_ns))


class FailureSource(Protocol):
    """What triage reads and writes back (the event store implements it)."""

    def cluster_rows(
        self, filters: Filters, *, prev_from_ns: int, from_ns: int, to_ns: int, tag_keys: Sequence[str]
    ) -> Any: ...

    def failure_texts(self, seqs: Sequence[int]) -> Mapping[int, tuple[str | None, str | None, str | None]]: ...

    def relabel_failures(
        self, relabel: Callable[[Mapping[str, Any]], tuple[str | None, str | None]], *, batch: int,
        progress: Callable[[int], Any] | None,
    ) -> tuple[int, int]: ...

    def reattribute_failed_runs(
        self, attribute: Callable[[Mapping[str, Any], Sequence[Mapping[str, Any]]], Mapping[str, Any]], *,
        batch: int, progress: Callable[[int], Any] | None,
    ) -> tuple[int, int]: ...


def cluster_report(store: FailureSource, q: ClusterQuery) -> dict[str, Any]:
    """Clusters of failures in [from, to): failed runs by root cause, recovered runs, failed steps.

    - ``failed_runs`` (also ``count``): failed runs whose root cause is in the cluster; each
      failed run is in exactly one cluster, so the shares of failed runs sum to at most 1;
    - ``recovered_runs``: runs that ended ok with at least one failed step in the cluster;
    - ``failed_steps``: failed steps (not run events) in the cluster, in runs of either outcome.

    Runs are those started in the window that match the filters (as ``GET /api/v1/runs``).
    """
    span = q.to_ns - q.from_ns
    got = store.cluster_rows(
        q.filters, prev_from_ns=q.from_ns - span, from_ns=q.from_ns, to_ns=q.to_ns, tag_keys=CONCENTRATION_TAGS
    )
    failed_rows, step_rows = got.failed_runs, got.failed_steps
    first_seen, last_seen, tags = got.first_seen, got.last_seen, got.tags

    clusters: dict[str, _Cluster] = defaultdict(_Cluster)
    run_start: dict[str, int] = {}
    run_dims: dict[str, tuple[str | None, str | None]] = {}
    failed_total = 0
    for x in failed_rows:
        if x.cluster_id is None:
            continue
        c = clusters[x.cluster_id]
        if x.start_ns < q.from_ns:
            c.prev_failed.add(x.run_id)
            continue
        failed_total += 1
        c.failed.add(x.run_id)
        run_start[x.run_id] = x.start_ns
        run_dims[x.run_id] = (x.model, x.scenario)
        if c.example is None:
            c.example = x
    recovered_total: set[str] = set()
    steps_total = 0
    for x in step_rows:
        c = clusters[x.cluster_id]
        if x.run_start < q.from_ns:
            c.prev_steps += 1
            if x.run_status == "ok":
                c.prev_recovered.add(x.run_id)
            continue
        steps_total += 1
        c.steps += 1
        if c.example is None or c.example.kind == "run":
            c.example = x
        if x.run_status == "ok":
            c.recovered.add(x.run_id)
            recovered_total.add(x.run_id)
            run_start[x.run_id] = x.run_start
            run_dims[x.run_id] = (x.run_model, x.run_scenario)
        if x.tool and (x.run_status == "ok" or x.run_id in c.failed):
            c.tools[x.tool].add(x.run_id)

    # The rows carry labels only: read the error texts of each cluster's example (one per cluster).
    texts = store.failure_texts([c.example.seq for c in clusters.values() if c.example is not None])
    for c in clusters.values():
        if c.example is not None and c.example.seq in texts:
            error_type, error_message, error_class = texts[c.example.seq]
            c.example = c.example._replace(error_type=error_type, error_message=error_message, error_class=error_class)

    starts = _buckets(q)
    answer: list[dict[str, Any]] = []
    for cid, c in clusters.items():
        members = c.failed | c.recovered
        if not members and not c.steps:
            continue
        count, previous = len(members), len(c.prev_failed | c.prev_recovered)
        if count < q.min_runs or c.example is None:
            continue
        f = _classify_row(c.example._asdict())
        failure_class = c.example.failure_class
        answer.append({
            "cluster_id": cid,
            "failure_class": failure_class,
            "label": f.label if f.cluster_id == cid else f"{failure_class} · {cid}",
            "template": f.template if f.cluster_id == cid else None,
            "hint": f.hint,
            "count": len(c.failed),
            "failed_runs": len(c.failed),
            "recovered_runs": len(c.recovered),
            "failed_steps": c.steps,
            "previous_count": len(c.prev_failed),
            "previous_failed_runs": len(c.prev_failed),
            "previous_recovered_runs": len(c.prev_recovered),
            "previous_failed_steps": c.prev_steps,
            "share_of_failed_runs": len(c.failed) / failed_total if failed_total else 0.0,
            "state": cluster_state(count, previous, seen_before_window=first_seen.get(cid, q.from_ns) < q.from_ns),
            **_times("first_seen", first_seen.get(cid)),
            **_times("last_seen", last_seen.get(cid)),
            **_trend(q, starts, c, run_start),
            "affected": _affected(c, run_dims),
            "concentration": _concentration(members, tags),
            "first_seen_in_window_tags": tags.get(min(members, key=lambda rid: (run_start[rid], rid)), {})
            if members else {},
            "sample_run_ids": _samples(c, run_start, q.samples),
            "runs_url": _runs_url(q, cid, "error"),
            "recovered_runs_url": _runs_url(q, cid, "ok"),
        })  # fmt: skip
    total = len(answer)
    answer.sort(key=_SORT_KEYS[q.sort])
    gone = sorted(cid for cid, c in clusters.items() if (c.prev_failed or c.prev_recovered)
                  and not (c.failed or c.recovered))  # fmt: skip
    step = q.step_ns if q.step_ns is not None else (starts[1] - starts[0] if len(starts) > 1 else span)
    return {
        "from": format_timestamp(q.from_ns),
        "to": format_timestamp(q.to_ns),
        "from_ms": q.from_ns // 10**6,
        "to_ms": q.to_ns // 10**6,
        "from_ns": q.from_ns,
        "to_ns": q.to_ns,
        "step_s": step / 10**9,
        "bucket_ns": step,
        "failed_runs": failed_total,
        "recovered_runs": len(recovered_total),
        "failed_steps": steps_total,
        "algorithm_version": ALGORITHM_VERSION,
        "sort": q.sort,
        "clusters_total": total,
        "clusters": answer[: q.limit],
        "gone": [
            {"cluster_id": cid, "previous_count": len(clusters[cid].prev_failed),
             "previous_recovered_runs": len(clusters[cid].prev_recovered), "state": "gone"}
            for cid in gone
        ],  # fmt: skip
    }


_SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "failed_runs": lambda c: (-c["failed_runs"], -c["recovered_runs"], -c["failed_steps"], c["cluster_id"]),
    "growth": lambda c: (
        -(c["failed_runs"] - c["previous_failed_runs"]), -c["failed_runs"], -c["recovered_runs"], c["cluster_id"]
    ),
    "newest": lambda c: (-(c["first_seen_ns"] or 0), -c["failed_runs"], c["cluster_id"]),
}


def _times(name: str, ns: int | None) -> dict[str, Any]:
    # ``<name>`` stays epoch ns (the first shape of this API); _time and _ms as the metrics API.
    return {
        name: ns,
        f"{name}_ns": ns,
        f"{name}_time": format_timestamp(ns) if ns is not None else None,
        f"{name}_ms": ns // 10**6 if ns is not None else None,
    }


def _trend(q: ClusterQuery, starts: list[int], c: _Cluster, run_start: dict[str, int]) -> dict[str, Any]:
    failed = [0] * len(starts)
    recovered = [0] * len(starts)
    for runs, counts in ((c.failed, failed), (c.recovered, recovered)):
        for rid in runs:
            counts[max(0, bisect.bisect_right(starts, run_start[rid]) - 1)] += 1
    points = [
        {"t": t // 10**6, "time": format_timestamp(t), "failed_runs": n, "recovered_runs": m}
        for t, n, m in zip(starts, failed, recovered, strict=True)
    ]
    return {"trend": failed, "trend_points": points}


def _affected(c: _Cluster, run_dims: dict[str, tuple[str | None, str | None]]) -> dict[str, dict[str, int]]:
    """Runs of the cluster (failed and recovered) by tool of the failure, run model and scenario."""
    members = c.failed | c.recovered
    models: Counter[str] = Counter(m for m, _ in (run_dims[rid] for rid in members) if m)
    scenarios: Counter[str] = Counter(sc for _, sc in (run_dims[rid] for rid in members) if sc)
    tools = Counter({tool: len(runs) for tool, runs in c.tools.items()})
    out = {"tools": dict(_top(tools, 10)), "models": dict(_top(models, 10)), "scenarios": dict(_top(scenarios, 10))}
    return {k: v for k, v in out.items() if v}


def _concentration(members: set[str], tags: dict[str, dict[str, str]]) -> dict[str, list[dict[str, Any]]]:
    conc: dict[str, list[dict[str, Any]]] = {}
    n = len(members)
    for key in CONCENTRATION_TAGS:
        counts = Counter(tags[rid][key] for rid in members if key in tags.get(rid, {}))
        conc[key] = [{"value": v, "runs": k, "share": k / n} for v, k in _top(counts, 3)] if n else []
    return conc


def _samples(c: _Cluster, run_start: dict[str, int], n: int) -> list[str]:
    """Newest failed runs first, then newest recovered runs."""
    newest = sorted(c.failed, key=lambda rid: (-run_start[rid], rid))
    newest += sorted(c.recovered, key=lambda rid: (-run_start[rid], rid))
    return newest[:n]


def _runs_url(q: ClusterQuery, cid: str, status: str) -> str:
    drill = replace(q.filters, from_ns=q.from_ns, to_ns=q.to_ns, cluster=(cid,), status=(status,), extra={})
    return "/api/v1/runs?" + drill.query_string()


def _top(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    """The ``n`` most common values, ties by value: the answer must not depend on set iteration order."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def relabel(row: Any) -> tuple[str | None, str | None]:
    """(failure_class, cluster_id) of a stored failed step: what the store writes back.

    A failed run keeps its labels here: they are its root cause's, settled by
    :func:`attribute` once every step is relabelled (:func:`reclassify`).
    """
    if row["kind"] == "run":
        return row["failure_class"], row["cluster_id"]
    f = _classify_row(row)
    return f.failure_class, f.cluster_id


def reclassify(
    store: FailureSource, *, batch: int = 5000, progress: Callable[[int], Any] | None = None
) -> tuple[int, int]:
    """Re-run classification over every failed event (after an algorithm version change).

    Failed steps are classified again from their own error; then every failed run is attributed
    again to its root cause. Returns (failed events examined, rows changed).
    """
    examined, changed = store.relabel_failures(relabel, batch=batch, progress=progress)
    _, runs_changed = store.reattribute_failed_runs(attribute, batch=batch, progress=None)
    return examined, changed + runs_changed
