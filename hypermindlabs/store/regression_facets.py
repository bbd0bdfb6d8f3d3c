"""Regression attribution's counts from the rollups' ``tag`` cube (not from raw runs).

For a finding's *selection* — the failing runs of a slice (optionally with one failure class), or
its slow runs (latency bin above a threshold bin) — attribution compares, in the current and the
baseline window, how many selected runs carry each tag value and each root-cause cluster. The
``tag`` cube keeps exactly that for slices of run dimensions (project, scenario, model): a cell
row per run and tag, and per failed run and its cluster (member ``cluster``), by status and
failure class, with a latency sketch.

The cube is read once for all selections: its slices (one statement), then its cells summed per
slice over each window's whole buckets (one statement per bucket range; day buckets inside the
baseline), sketches only for slow-run selections. The cost follows slices × buckets, not runs.

A slice with a member (``tool`` or ``tag.<key>``), or a population filtered by tools or tags,
needs the members jointly; the rollups keep that only in the ``full`` cube, whose cells are about
one per run (measured no cheaper than the raw runs): those selections are read from the runs
(:meth:`EventStore.run_facets`) by the caller.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from hypermindlabs.core.filters import Filters
from hypermindlabs.core.sketch import add_packed
from hypermindlabs.store.schema import events, rollup_cells, rollup_slices

__all__ = ["Selection", "CubeRead", "facet_counts", "tag_cube_answers", "cluster_examples", "RUN_DIMS"]

RUN_DIMS: tuple[str, ...] = ("project", "scenario", "model")
#: Up to this many slices go to the cells query as a list; more are filtered here.
_MAX_SLICE_LIST = 10000


@dataclass(frozen=True)
class Selection:
    """The runs one finding's attribution counts: ``dims`` (run dimension → value) and at most
    one ``member`` (``("tool", t)`` or ``("tag.<key>", v)``) name the slice; then the failing runs
    (``failed``; with ``failure_class``, only those of that class) or the runs in latency bins
    above ``above_bin``."""

    dims: tuple[tuple[str, str], ...]
    member: tuple[str, str] | None = None
    failed: bool = True
    failure_class: str | None = None
    above_bin: int | None = None


@dataclass(frozen=True)
class CubeRead:
    """Where a cube lives in ``rollup_cells``: its name, its partition and its tiers (s)."""

    name: str
    part: int
    tiers: tuple[int, ...]


# Per selection and window group: (kind, key, value) -> selected runs.
Counts = list[list[Counter[tuple[str, str, str]]]]
#: Window groups: each a list of disjoint whole-hour windows (the current one; the baseline's).
Windows = Sequence[Sequence[tuple[int, int]]]


def _facet(key: str, value: str) -> tuple[str, str, str] | None:
    if key == "cluster":
        return ("cluster", "cluster", value)
    if key.startswith("tag."):
        return ("tag", key[4:], value)
    return None  # tools are not attributed


def _cover(window: tuple[int, int], tiers: Sequence[int]) -> list[tuple[int, int, int]]:
    """Whole buckets covering ``window``, coarsest tier in the middle (windows are whole hours)."""
    from hypermindlabs.rollups.query import cover

    return cover(window[0], window[1], sorted(tiers, reverse=True))


def tag_cube_answers(filters: Filters, sel: Selection) -> bool:
    """Can the ``tag`` cube count this selection exactly? Only without members: a slice of run
    dimensions, in a population not filtered by tools or tags (those need members jointly)."""
    return sel.member is None and not filters.tool and not filters.tags


def facet_counts(
    conn: Connection, selections: Sequence[Selection], windows: Windows, *, filters: Filters, tag_cube: CubeRead
) -> Counts:
    """Per selection, per window group (the union of its disjoint whole-hour windows): how many
    selected runs have each tag value (``("tag", key, value)``) and each cluster
    (``("cluster", "cluster", id)``), exactly as the raw runs would count them. Every selection
    must be one :func:`tag_cube_answers`."""
    if not all(tag_cube_answers(filters, sel) for sel in selections):
        raise ValueError("the tag cube answers selections of run dimensions only")
    out: Counts = [[Counter() for _ in windows] for _ in selections]
    if selections:
        _from_tag_cube(conn, list(enumerate(selections)), windows, filters, tag_cube, out)
    return out


def _outcome_ok(sel: Selection, status: str, fclass: str | None) -> bool:
    if sel.above_bin is not None:
        return True
    return status == "error" and (sel.failure_class is None or (fclass or "unknown") == sel.failure_class)


def _dims_ok(sel: Selection, dims: dict[str, Any]) -> bool:
    return all(dims[d] == v for d, v in sel.dims)


def _cells(
    conn: Connection, cube: CubeRead, slice_ids: Iterable[int], windows: Windows, sketch_ids: set[int]
) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], dict[int, int]]]:
    """Runs per (slice, window group) and, for ``sketch_ids``, the latency bins per (slice, group)."""
    ids = list(slice_ids)
    if not ids:
        return {}, {}
    wanted = set(ids)
    c = rollup_cells
    n: dict[tuple[int, int], int] = {}
    keys: list[tuple[int, int]] = []
    index: dict[tuple[int, int], int] = {}
    gids: list[int] = []
    blobs: list[bytes] = []
    listed = len(ids) <= _MAX_SLICE_LIST
    for w, group in enumerate(windows):
        for window in group:
            for tier, a, b in _cover(window, cube.tiers):
                where = [c.c.part == cube.part, c.c.tier == tier, c.c.bucket_ns >= a, c.c.bucket_ns < b]
                if listed:
                    where.append(c.c.slice_id.in_(ids))
                stmt = select(c.c.slice_id, func.sum(c.c.n)).where(*where).group_by(c.c.slice_id)
                for sid, k in conn.execute(stmt).cursor.fetchall():
                    if sid in wanted:
                        n[sid, w] = n.get((sid, w), 0) + int(k)
                if not sketch_ids:
                    continue
                where_s = [*where[:4], c.c.slice_id.in_(list(sketch_ids))] if len(sketch_ids) <= _MAX_SLICE_LIST \
                    else where[:4]  # fmt: skip
                for sid, blob in conn.execute(select(c.c.slice_id, c.c.sketch).where(*where_s)).cursor.fetchall():
                    if sid not in sketch_ids:
                        continue
                    gid = index.get((sid, w))
                    if gid is None:
                        gid = index[sid, w] = len(keys)
                        keys.append((sid, w))
                    gids.append(gid)
                    blobs.append(blob)
    bins: list[dict[int, int]] = [{} for _ in keys]
    add_packed(bins, gids, blobs)
    return n, dict(zip(keys, bins, strict=True))


def _above(bins: dict[int, int], above_bin: int) -> int:
    return sum(k for b, k in bins.items() if b > above_bin)


def _from_tag_cube(conn: Connection, todo: list[tuple[int, Selection]], windows: Windows,
                   filters: Filters, cube: CubeRead, out: Counts) -> None:  # fmt: skip
    s = rollup_slices
    where = [s.c.level == "run", s.c.cube == cube.name]
    if all(sel.above_bin is None for _, sel in todo):
        where.append(s.c.status == "error")
    for d in RUN_DIMS:
        if getattr(filters, d):
            where.append(s.c[d].in_(getattr(filters, d)))
    cols = [s.c.slice_id, s.c.project, s.c.scenario, s.c.model, s.c.status, s.c.failure_class, s.c.mkey, s.c.mvalue]
    # slice -> [(selection index, its facet)]
    hits: dict[int, list[tuple[int, tuple[str, str, str]]]] = {}
    slow: set[int] = set()
    for sid, p, sc, m, status, fclass, mkey, mvalue in conn.execute(select(*cols).where(*where)).cursor.fetchall():
        facet = _facet(mkey, mvalue) if mkey is not None else None
        if facet is None:
            continue
        dims = {"project": p, "scenario": sc, "model": m}
        for i, sel in todo:
            if _dims_ok(sel, dims) and _outcome_ok(sel, status, fclass):
                hits.setdefault(sid, []).append((i, facet))
                if sel.above_bin is not None:
                    slow.add(sid)
    n, bins = _cells(conn, cube, hits, windows, slow)
    sel_of = dict(todo)
    for sid, targets in hits.items():
        for w in range(len(windows)):
            k = n.get((sid, w), 0)
            if not k:
                continue
            for i, facet in targets:
                sel = sel_of[i]
                got = k if sel.above_bin is None else _above(bins.get((sid, w), {}), sel.above_bin)
                if got:
                    out[i][w][facet] += got


def cluster_examples(
    conn: Connection, cluster_ids: Sequence[str], window: tuple[int, int]
) -> dict[str, dict[str, Any]]:
    """One failed run of each cluster started in ``window`` (its error fields, to label the
    cluster): an index seek on ``ix_events_cluster_start`` each, not a scan."""
    e = events
    cols = [e.c.error_type, e.c.error_message, e.c.error_class, e.c.failure_class, e.c.tool, e.c.model]
    out: dict[str, dict[str, Any]] = {}
    for cid in cluster_ids:
        stmt = (select(*cols).where(e.c.cluster_id == cid, e.c.start_ns >= window[0], e.c.start_ns < window[1],
                                    e.c.kind == "run").order_by(e.c.start_ns).limit(1))  # fmt: skip
        row = conn.execute(stmt).first()
        if row is not None:
            out[cid] = dict(row._mapping)
    return out
