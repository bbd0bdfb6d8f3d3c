"""Failure triage over stored events: classification at ingest, clusters with trends, reclassify.

The pure core (taxonomy, templates, cluster ids, hints) is :mod:`hypermindlabs.triage.classify`;
this module applies it to stored events, read through the :class:`FailureSource` protocol the
store implements (``store/failures.py`` holds the SQL), so triage imports no I/O. Every failed
event (step or run) is classified from its own error and stored dimensions; a run's class is
that of its own error.

Counting: a cluster's count is the number of *runs* affected by it — runs whose start time is in
the window and that have at least one event in the cluster — so ``GET /api/v1/runs?cluster=<id>``
with the same filters lists exactly the runs behind every count.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from hypermindlabs.core.filters import Filters
from hypermindlabs.triage.classify import ALGORITHM_VERSION, Failure, classify_failure, cluster_state

__all__ = ["enrich", "relabel", "cluster_report", "reclassify", "ClusterQuery", "FailureSource"]

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


@dataclass(frozen=True)
class ClusterQuery:
    filters: Filters
    from_ns: int
    to_ns: int
    buckets: int = 24
    samples: int = 5


class FailureSource(Protocol):
    """What triage reads and writes back (the event store implements it)."""

    def failure_rows(
        self, filters: Filters, *, prev_from_ns: int, from_ns: int, to_ns: int, tag_keys: Sequence[str]
    ) -> Any: ...

    def relabel_failures(
        self, relabel: Callable[[Mapping[str, Any]], tuple[str | None, str | None]], *, batch: int,
        progress: Callable[[int], Any] | None,
    ) -> tuple[int, int]: ...


def cluster_report(store: FailureSource, q: ClusterQuery) -> dict[str, Any]:
    """Clusters of failures in [from, to) with counts, trend, state, hint and drill-down."""
    span = q.to_ns - q.from_ns
    got = store.failure_rows(
        q.filters, prev_from_ns=q.from_ns - span, from_ns=q.from_ns, to_ns=q.to_ns, tag_keys=CONCENTRATION_TAGS
    )
    rows, failed_runs, first_seen, last_seen, tags = got.rows, got.failed_runs, got.first_seen, got.last_seen, got.tags

    step = max(1, math.ceil(span / q.buckets))
    cur_runs: dict[str, set[str]] = defaultdict(set)
    prev_runs: dict[str, set[str]] = defaultdict(set)
    info: dict[str, dict[str, Any]] = {}
    run_start: dict[str, int] = {}
    series: dict[str, list[set[str]]] = {}
    affected: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for row in rows:
        cid = row.cluster_id
        if row.run_start < q.from_ns:
            prev_runs[cid].add(row.run_id)
            continue
        cur_runs[cid].add(row.run_id)
        run_start[row.run_id] = row.run_start
        if cid not in info or (info[cid]["kind"] == "run" and row.kind != "run"):
            info[cid] = {"kind": row.kind, "row": row}
        b = min(q.buckets - 1, (row.run_start - q.from_ns) // step)
        series.setdefault(cid, [set() for _ in range(q.buckets)])[b].add(row.run_id)
        if row.tool:
            affected[cid]["tools"][row.tool] += 1
        if row.model:
            affected[cid]["models"][row.model] += 1
        if row.run_scenario:
            affected[cid]["scenarios"][row.run_scenario] += 1

    clusters = []
    for cid, runs in cur_runs.items():
        row = info[cid]["row"]
        f = _classify_row(row._asdict())
        count, previous = len(runs), len(prev_runs.get(cid, ()))
        conc: dict[str, list[dict[str, Any]]] = {}
        for key in CONCENTRATION_TAGS:
            c = Counter(tags[rid].get(key) for rid in runs if tags[rid].get(key) is not None)
            conc[key] = [{"value": v, "runs": n, "share": n / count} for v, n in _top(c, 3)]
        earliest = min(runs, key=lambda rid: (run_start[rid], rid))
        drill = replace(q.filters, from_ns=q.from_ns, to_ns=q.to_ns, cluster=(cid,), extra={})
        clusters.append({
            "cluster_id": cid,
            "failure_class": row.failure_class,
            "label": f.label if f.cluster_id == cid else f"{row.failure_class} · {cid}",
            "template": f.template if f.cluster_id == cid else None,
            "hint": f.hint,
            "count": count,
            "previous_count": previous,
            "share_of_failed_runs": count / failed_runs if failed_runs else 0.0,
            "state": cluster_state(count, previous, seen_before_window=first_seen.get(cid, q.from_ns) < q.from_ns),
            "first_seen": first_seen.get(cid),
            "last_seen": last_seen.get(cid),
            "trend": [len(s) for s in series[cid]],
            "affected": {k: dict(_top(v, 10)) for k, v in affected[cid].items()},
            "concentration": conc,
            "first_seen_in_window_tags": tags.get(earliest, {}),
            "sample_run_ids": sorted(runs, key=lambda rid: (-run_start[rid], rid))[: q.samples],
            "runs_url": "/api/v1/runs?" + drill.query_string(),
        })  # fmt: skip
    clusters.sort(key=lambda c: (-c["count"], c["cluster_id"]))
    gone = sorted(set(prev_runs) - set(cur_runs))
    return {
        "from_ns": q.from_ns,
        "to_ns": q.to_ns,
        "bucket_ns": step,
        "failed_runs": failed_runs,
        "algorithm_version": ALGORITHM_VERSION,
        "clusters": clusters,
        "gone": [{"cluster_id": cid, "previous_count": len(prev_runs[cid]), "state": "gone"} for cid in gone],
    }


def _top(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    """The ``n`` most common values, ties by value: the answer must not depend on set iteration order."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def relabel(row: Any) -> tuple[str | None, str | None]:
    """(failure_class, cluster_id) of a stored failed event: what the store writes back."""
    f = _classify_row(row)
    return f.failure_class, f.cluster_id


def reclassify(
    store: FailureSource, *, batch: int = 5000, progress: Callable[[int], Any] | None = None
) -> tuple[int, int]:
    """Re-run classification over every failed event (after an algorithm version change).

    Returns (failed events examined, rows changed).
    """
    return store.relabel_failures(relabel, batch=batch, progress=progress)
