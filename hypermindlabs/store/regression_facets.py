"""Regression attribution's counts from the rollups' ``tag`` cube (not from raw runs).

For a finding's *selection* — the failing runs of a slice (optionally with one failure class), or
its slow runs (latency bin above a threshold bin) — attribution compares, in the current and the
baseline window, how many selected runs carry each tag value and each root-cause cluster. The
``tag`` cube keeps exactly that for slices of run dimensions (project, scenario, model): a cell
row per run and tag, and per failed run and its cluster (member ``cluster``), by status and
failure class, with a latency sketch.

The cube is read once for all selections: its slices (one statement), then its cells summed per
slice over each window's whole buckets (one statement per bucket range, the selected slices' ids
as a list; day buckets inside the baseline), sketches only for slow-run selections' slices. The
cost follows slices × buckets, not runs.

A slice with a member (``tool`` or ``tag.<key>``), or a population filtered by tools or tags,
needs the members jointly; the rollups keep that only in the ``full`` cube, whose cells are about
one per run (measured no cheaper than the raw runs): those selections are read from the runs,
:func:`selected_runs`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, case, func, literal_column, or_, select, true
from sqlalchemy.engine import Connection

from hypermindlabs.core.buckets import cover
from hypermindlabs.core.filters import Filters
from hypermindlabs.core.sketch import add_packed
from hypermindlabs.core.vocabulary import chunks
from hypermindlabs.store.dialect import in_ids
from hypermindlabs.store.schema import events, rollup_cells, rollup_slices
from hypermindlabs.store.tag_sets import tags_json

__all__ = [
    "Selection", "CubeRead", "facet_counts", "tag_cube_answers", "cluster_examples", "selected_runs", "RunSelection",
    "selected_runs_of", "sample_hash",
    "sample_keep", "RUN_DIMS",
]  # fmt: skip

RUN_DIMS: tuple[str, ...] = ("project", "scenario", "model")


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


def _matches(sel: Selection, s: Any) -> Any:
    """SQL: the cube slices (``rollup_slices`` alias ``s``) in a selection (its dimensions and
    outcome; the latency bins of slow-run selections are read per cell)."""
    cond = [s.c[d] == v for d, v in sel.dims]
    if sel.above_bin is None:
        cond.append(s.c.status == "error")
        if sel.failure_class is not None:
            cls = s.c.failure_class == sel.failure_class
            cond.append(or_(cls, s.c.failure_class.is_(None)) if sel.failure_class == "unknown" else cls)
    return and_(true(), *cond)


#: Slice ids per ``IN`` list of a cells statement (well below SQLite's 32,766 variables).
_ID_CHUNK = 5000


def _cells(
    conn: Connection, cube: CubeRead, counted: Sequence[int], slow: Sequence[int], windows: Windows
) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], dict[int, int]]]:
    """Runs per (slice, window group) of the slices ``counted`` and latency bins per (slice,
    group) of the slices ``slow``: per bucket range and kind, one statement a chunk of slice ids
    (the ids the slices read found: a list, not the slices' subquery, which each statement
    re-evaluated — the cost of every short range)."""
    c = rollup_cells
    n: dict[tuple[int, int], int] = {}
    keys: list[tuple[int, int]] = []
    index: dict[tuple[int, int], int] = {}
    gids: list[int] = []
    blobs: list[bytes] = []
    counted_chunks = [list(ids) for ids in chunks(counted, _ID_CHUNK)]
    slow_chunks = [list(ids) for ids in chunks(slow, _ID_CHUNK)]
    for w, group in enumerate(windows):
        for window in group:
            for tier, a, b in _cover(window, cube.tiers):
                where = [c.c.part == cube.part, c.c.tier == tier, c.c.bucket_ns >= a, c.c.bucket_ns < b]
                for ids in counted_chunks:
                    stmt = select(c.c.slice_id, func.sum(c.c.n)).where(*where, in_ids(conn, c.c.slice_id, ids))
                    for sid, k in conn.execute(stmt.group_by(c.c.slice_id)).cursor.fetchall():
                        n[sid, w] = n.get((sid, w), 0) + int(k)
                for ids in slow_chunks:
                    stmt = select(c.c.slice_id, c.c.sketch).where(*where, in_ids(conn, c.c.slice_id, ids))
                    for sid, blob in conn.execute(stmt).cursor.fetchall():
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
    base = [s.c.level == "run", s.c.cube == cube.name, s.c.mkey.is_not(None)]
    for d in RUN_DIMS:
        if getattr(filters, d):
            base.append(s.c[d].in_(getattr(filters, d)))
    any_sel = or_(*[_matches(sel, s) for _, sel in todo])
    cols = [s.c.slice_id, s.c.project, s.c.scenario, s.c.model, s.c.status, s.c.failure_class, s.c.mkey, s.c.mvalue]
    # slice -> (its facet, the selections it is in); selections per distinct slice attributes
    # once (a slice's attributes repeat for every tag value and cluster).
    hits: dict[int, tuple[tuple[str, str, str], list[int]]] = {}
    by_attrs: dict[tuple[Any, ...], list[int]] = {}
    rows = conn.execute(select(*cols).where(*base, any_sel)).cursor.fetchall()
    for sid, p, sc, m, status, fclass, mkey, mvalue in rows:
        facet = _facet(mkey, mvalue)
        if facet is None:
            continue
        attrs = (p, sc, m, status, fclass)
        sels = by_attrs.get(attrs)
        if sels is None:
            dims = {"project": p, "scenario": sc, "model": m}
            sels = by_attrs[attrs] = [i for i, sel in todo if all(dims[d] == v for d, v in sel.dims)
                                      and _outcome_ok(sel, status, fclass)]  # fmt: skip
        if sels:
            hits[sid] = (facet, sels)
    sel_of = dict(todo)
    counted = [sid for sid, (_, sels) in hits.items() if any(sel_of[i].above_bin is None for i in sels)]
    slow = [sid for sid, (_, sels) in hits.items() if any(sel_of[i].above_bin is not None for i in sels)]
    n, bins = _cells(conn, cube, counted, slow, windows)
    for sid, (facet, sels) in hits.items():
        for w in range(len(windows)):
            k = n.get((sid, w), 0)
            cell_bins = bins.get((sid, w))
            for i in sels:
                sel = sel_of[i]
                got = k if sel.above_bin is None else _above(cell_bins, sel.above_bin) if cell_bins else 0
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


#: The hash a member slice's sample keeps a run by: the run event's ``seq`` spread over
#: [0, 2**32) by Fibonacci hashing (multiplying by 2**32 / golden ratio, modulo 2**32: for
#: consecutive or evenly spaced ``seq`` the values are equidistributed, so the kept runs do not
#: follow the order or period in which runs were stored). Integer arithmetic within 63 bits, the
#: same in SQLite, PostgreSQL and :func:`sample_hash`.
_HASH_MOD, _HASH_MUL, _HASH_RANGE = 2**31, 2654435761, 2**32


def sample_hash(seq: int) -> int:
    """The hash of a run's ``seq`` that :func:`selected_runs` samples by (in [0, 2**32)).

    >>> [sample_hash(s) for s in (0, 1, 2)]
    [0, 2654435761, 1013904226]
    """
    return (seq % _HASH_MOD) * _HASH_MUL % _HASH_RANGE


def sample_keep(selected: int, target: int) -> int | None:
    """The hash threshold that keeps about ``target`` of ``selected`` runs (``None``: keep all).

    >>> sample_keep(900, 1000), sample_keep(8000, 2000) == 2**30
    (None, True)
    """
    if selected <= target:
        return None
    return -(-target * _HASH_RANGE // selected)


def _hash_sql(seq: Any) -> Any:
    return (seq % literal_column(str(_HASH_MOD))) * literal_column(str(_HASH_MUL)) % literal_column(str(_HASH_RANGE))


# SQLite's planner takes the narrower ix_runs_start or a dimension's index and reads every
# candidate's table row; the covering indexes of migration 0017 hold the filters (3x fewer row
# reads at 1M events). SQLAlchemy renders no SQLite index hints, so the compiled text gets one.
_RUNS_ALIAS = "events AS r"


def _execute_indexed(conn: Connection, stmt: Any, index: str | None) -> Any:
    if index is None or conn.dialect.name != "sqlite":
        return conn.execute(stmt)
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    sql = str(compiled)
    if sql.count(_RUNS_ALIAS) != 1:
        return conn.execute(stmt)
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    return conn.exec_driver_sql(sql.replace(_RUNS_ALIAS, f"{_RUNS_ALIAS} INDEXED BY {index}"), params)


@dataclass(frozen=True)
class RunSelection:
    """A member slice's selection as :func:`selected_runs` reads it: the runs of ``filters`` that
    failed (with ``failure_class``, if given) or lasted longer than ``min_duration_ns``."""

    filters: Filters
    failed: bool = True
    failure_class: str | None = None
    min_duration_ns: int | None = None


Row = tuple[int, str, str | None]  # (start, tags JSON, cluster)


def _selection_sql(r: Any, sel: RunSelection, keep: int | None) -> Any:
    from hypermindlabs.store.runs import run_conditions

    # Cheap conditions first: inside a disjunction the database evaluates them in order, and the
    # dimensions, outcome, duration and hash are read from the index, the tool and tag probes
    # (last in run_conditions) are index seeks.
    base = replace(sel.filters, status=(), error_class=(), from_ns=None, to_ns=None)
    cond: list[Any] = []
    if sel.failed:
        cond.append(r.c.status == literal_column("'error'"))
        if sel.failure_class is not None:
            cls = r.c.failure_class == sel.failure_class
            cond.append(or_(cls, r.c.failure_class.is_(None)) if sel.failure_class == "unknown" else cls)
    if sel.min_duration_ns is not None:
        cond.append(r.c.end_ns - r.c.start_ns > max(sel.min_duration_ns, 0))
    if keep is not None:
        cond.append(_hash_sql(r.c.seq) < keep)
    return and_(true(), *cond, *run_conditions(r, base))


def selected_runs_of(conn: Connection, selections: Sequence[RunSelection], windows: Sequence[tuple[int, int]],
                     keeps: Sequence[int | None]) -> list[list[Row]]:  # fmt: skip
    """Per selection, its runs started in ``windows``; with a ``keeps`` threshold
    (:func:`sample_keep`), only the runs whose :func:`sample_hash` is below it: a deterministic
    sample of about ``keep / 2**32`` of the selection, independent of its tags and clusters.

    Selections of failing runs are read together, in one statement per window (each selection's
    conditions a column, their disjunction the filter), and so are those of slow runs: the index
    range of a window is scanned once for every finding, not once per finding.

    Index paths (migration 0017): failing runs come from ``ix_runs_failed_cover`` (failed runs
    only, so the read follows the window's failures, not its runs); slow runs from
    ``ix_runs_timed_cover`` (the window's runs scanned in the index). Both hold the run
    dimensions, the failure class (failed) and ``run_id`` (the tool and tag probes), and the
    sample's hash is of ``seq`` (in every index entry), so a candidate's table row is read only
    once it is selected and sampled. The kind and status are SQL literals and a slow-run query
    states ``end > start``: SQLite uses a partial index only for a query stating its condition.
    """
    r = events.alias("r")
    out: list[list[Row]] = [[] for _ in selections]
    # Per index, the selections it serves (any other selection on its own, unhinted).
    groups: dict[str, list[int]] = {}
    for i, sel in enumerate(selections):
        timed = "ix_runs_timed_cover" if sel.min_duration_ns is not None else f"#{i}"
        groups.setdefault("ix_runs_failed_cover" if sel.failed else timed, []).append(i)
    for key, members in groups.items():
        hinted = None if key.startswith("#") else key
        base = [r.c.kind == literal_column("'run'")]
        if hinted == "ix_runs_failed_cover":
            base.append(r.c.status == literal_column("'error'"))
        elif hinted == "ix_runs_timed_cover":
            base.append(r.c.end_ns > r.c.start_ns)  # implied by a duration bound; the index's condition
        conds = [_selection_sql(r, selections[i], keeps[i]) for i in members]
        flags = [case((c, 1), else_=0) for c in conds] if len(members) > 1 else []
        for a, b in windows:
            stmt = select(r.c.start_ns, tags_json(r), r.c.cluster_id, *flags).where(
                *base, r.c.start_ns >= a, r.c.start_ns < b, or_(*conds)
            )
            for row in _execute_indexed(conn, stmt, hinted).cursor.fetchall():
                if not flags:
                    out[members[0]].append(row)
                    continue
                for i, flag in zip(members, row[3:], strict=True):
                    if flag:
                        out[i].append(row[:3])
    return out


def selected_runs(conn: Connection, filters: Filters, windows: Sequence[tuple[int, int]], *, failure_class: str | None,
                  failed: bool, min_duration_ns: int | None, keep: int | None = None) -> list[Row]:  # fmt: skip
    """One selection's runs (:func:`selected_runs_of`)."""
    sel = RunSelection(filters, failed=failed, failure_class=failure_class, min_duration_ns=min_duration_ns)
    return selected_runs_of(conn, [sel], windows, [keep])[0]
