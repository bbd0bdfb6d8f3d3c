"""Reading rollup cells into per-group aggregates: the two strategies (slice-first, joined).

The rollups package plans a query (which cube per tier, :func:`hypermindlabs.rollups.query.plan`)
and describes it to the store as a :class:`CellQuery`; this module sums that cube's cells over
whole buckets in SQL. Latency percentiles come from the cells' packed sketches, merged per group
(:func:`hypermindlabs.core.sketch.add_packed`).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import and_, exists, func, literal_column, select, union_all
from sqlalchemy.engine import Connection

from hypermindlabs.core.filters import Filters
from hypermindlabs.core.sketch import add_packed
from hypermindlabs.core.vocabulary import INHERITED, ROLLUP_SQUARES
from hypermindlabs.core.vocabulary import ROLLUP_MEASURES as MEASURES
from hypermindlabs.store.dialect import CACHED_TABLE_COST, in_ids, int_sum, planned_for_their_values, with_begin
from hypermindlabs.store.schema import rollup_cells, rollup_slice_members, rollup_slices

__all__ = ["Agg", "CellQuery", "RollupReader", "error_class_of"]

_plus = operator.add


@dataclass(frozen=True)
class CellQuery:
    """One planned rollup read, in the store's terms (built by :mod:`hypermindlabs.rollups`)."""

    level: str  # "run" or "step"
    kinds: tuple[str, ...]  # ("run",) or the step kinds
    group_by: tuple[str, ...]
    filters: Filters
    cube: str  # the cube's name (rollup_slices.cube)
    members: str  # how the cube keeps members: none | tool | tag | tags | all
    member_keys: tuple[str, ...]  # member keys the query filters or groups by (tool, tag.<key>)
    parts: Mapping[str | None, int]  # the cells' part per step kind (None at run level)


@dataclass
class Agg:
    sums: list[Any] = field(default_factory=lambda: [0] * len(MEASURES))  # ints; the squares float
    errors: int = 0
    classes: dict[str | None, int] = field(default_factory=dict)
    bins: dict[int, int] = field(default_factory=dict)
    # Drill-down exactness: the group took error runs without a failure class ("unknown"), or
    # the window has ok runs with a failure class (listed by status=ok but grouped elsewhere).
    null_class_errors: bool = False
    classified_ok: bool = False


def _group_columns(q: CellQuery, s: Any) -> tuple[list[Any], list[Any]]:
    """(select columns, extra joins) for the SQL-grouped dimensions (:func:`_names`) on this cube."""
    cols: list[Any] = []
    joins: list[Any] = []
    for g in q.group_by:
        if g in ("error_class",) or (g == "kind" and q.level == "run"):
            continue  # from status / failure_class, or constant
        member = g == "tool" and q.level == "run" or g.startswith("tag.")
        if not member:
            cols.append(s.c[g])
        elif q.members in ("tool", "tag"):
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


def _member_filter(q: CellQuery, key: str) -> tuple[str, ...]:
    if key == "tool":
        return q.filters.tool
    return dict(q.filters.tags).get(key[4:], ())


def _conditions(q: CellQuery, s: Any) -> list[Any]:
    f = q.filters
    cond: list[Any] = []  # the level, cube and step kind are the cells' part
    for dim in INHERITED + (("tool",) if q.level == "step" else ()):
        if getattr(f, dim):
            cond.append(s.c[dim].in_(getattr(f, dim)))
    if f.status:
        cond.append(s.c.status.in_(f.status))
    if f.error_class:
        cond.append(s.c.failure_class.in_(f.error_class))
    keys = list(q.member_keys)
    if q.members in ("tool", "tag"):
        # Every slice of the tool cube has mkey "tool": no condition there, so its cells are read
        # without listing all its slices in the cells query.
        if q.members == "tag":
            cond.append(s.c.mkey == keys[0])
        if _member_filter(q, keys[0]):
            cond.append(s.c.mvalue.in_(_member_filter(q, keys[0])))
    elif q.members in ("tags", "all"):
        for key in keys:
            values = _member_filter(q, key)
            if values and key not in q.group_by:  # a grouped key filters in its join
                m = rollup_slice_members
                cond.append(
                    exists().where(m.c.slice_id == s.c.slice_id, m.c.key == key, m.c.value.in_(values))
                )
    return cond


class RollupReader:
    """Reads of one answer on one connection (one snapshot): what ``EventStore.rollup_reader`` yields."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # The matching slices per planned read: the tiers of one answer share them.
        self._slices: dict[str, tuple[dict[int, Any], bool]] = {}
        # Whether this transaction set PostgreSQL's cached-table cost (planned_for_their_values).
        self._costed = False

    def read(
        self, q: CellQuery, tier: int, windows: Sequence[tuple[int, int]], aggs: dict[tuple[Any, ...], Agg], *,
        origin_ns: int | None = None, step_ns: int | None = None,
    ) -> None:  # fmt: skip
        """Add the cells of ``q``'s cube at ``tier`` in ``windows`` (disjoint ranges of its buckets)
        to ``aggs``; with ``step_ns``, per point ``(bucket - origin_ns) // step_ns``.

        The ranges are read in one statement each read takes (a UNION ALL of range scans: an OR of
        ranges would scan the tier), so a summary's two edges of a tier cost one round trip."""
        self._read(q, tuple((tier, a, b) for a, b in windows), aggs, origin_ns, step_ns)

    def read_tiers(
        self, reads: Sequence[tuple[CellQuery, int, Sequence[tuple[int, int]]]], aggs: dict[tuple[Any, ...], Agg]
    ) -> None:
        """Add the cells of several ``(query, tier, windows)`` reads to ``aggs`` (no time step): a
        summary's tiers. The reads of one cube (the same query) share their statements: the ranges
        of all its tiers are one UNION ALL of range scans, so a 24 h summary (hours, an edge quarter,
        edge minutes) reads its cells in one statement instead of one per tier."""
        groups: dict[str, tuple[CellQuery, list[tuple[int, int, int]]]] = {}
        for q, tier, windows in reads:
            groups.setdefault(repr(q), (q, []))[1].extend((tier, a, b) for a, b in windows)
        if not self._costed and any(q.members in ("tags", "all") for q, _ in groups.values()):
            # A joined read follows: its planner cost goes with the answer's BEGIN (no round trip).
            self._costed = with_begin(self._conn, CACHED_TABLE_COST)
        for q, ranges in groups.values():
            self._read(q, tuple(ranges), aggs, None, None)

    def _read(
        self, q: CellQuery, ranges: tuple[tuple[int, int, int], ...], aggs: dict[tuple[Any, ...], Agg],
        origin_ns: int | None, step_ns: int | None,
    ) -> None:  # fmt: skip
        if not ranges:
            return
        if q.members in ("tags", "all"):
            # Planned for their values on PostgreSQL; the cost is set once per answer's transaction.
            with planned_for_their_values(self._conn, set_cost=not self._costed):
                _read_joined(_Scan(self._conn, q, ranges, origin_ns, step_ns), aggs)
            self._costed = True
            return
        key = repr(q)
        if key not in self._slices:
            self._slices[key] = _matching_slices(self._conn, q)
        _read_by_slice(_Scan(self._conn, q, ranges, origin_ns, step_ns), aggs, self._slices[key])


class _Scan(NamedTuple):
    """One read: the connection, the query, its ranges of buckets per tier, and the time step if any."""

    conn: Connection
    q: CellQuery
    ranges: tuple[tuple[int, int, int], ...]  # (tier, first bucket, end): disjoint, whole buckets
    origin_ns: int | None
    step_ns: int | None


# Up to this many matching slices are passed to the cells query as a list; more are filtered in
# Python (the cells of the whole cube and window are then grouped by slice).
_MAX_SLICE_LIST = 5000
#: The finest tier (s): a summary's edge minutes hold few cells per group.
_MINUTE_S = 60
#: Up to this many cells (matching slices × buckets of the window, an upper bound) a read takes
#: every cell in one statement and sums them here instead of grouping in SQL first.
_FEW_CELLS = 1_000


def _matching_slices(conn: Connection, q: CellQuery) -> tuple[dict[int, Any], bool]:
    """The slices of ``q``'s cube matching its filters, each with its group key (minus the time)
    and outcome; and whether the cells query should list them."""
    s = rollup_slices
    gcols, _ = _group_columns(q, s)
    conditions = _conditions(q, s)
    where = [s.c.level == q.level, s.c.cube == q.cube, *conditions]
    if q.level == "step":
        where.append(s.c.kind.in_(q.kinds))
    ng = len(gcols)
    want_class = "error_class" in q.group_by
    keyed: dict[int, Any] = {}
    for row in _rows(conn, select(s.c.slice_id, *gcols, s.c.status, s.c.failure_class).where(*where)):
        attrs, status, fclass = row[1 : ng + 1], row[ng + 1], row[ng + 2]
        keyed[row[0]] = (attrs, error_class_of(status, fclass) if want_class else None, status, fclass)
    return keyed, bool(conditions) and len(keyed) <= _MAX_SLICE_LIST


def _read_by_slice(scan: _Scan, aggs: dict[tuple[Any, ...], Agg], matching: tuple[dict[int, Any], bool]) -> None:
    """The small cubes (hundreds to a few thousand slices): pick the matching slices first (once
    per answer, :func:`_matching_slices`), then sum the cells per slice id without a join, and group
    the slices in Python. A join would look a slice up for every cell; this looks each up once."""
    conn, q, ranges, origin_ns, step_ns = scan
    c = rollup_cells
    keyed, listed = matching
    if not keyed:
        return
    want_class = "error_class" in q.group_by
    by_slice: list[Any] = [c.c.slice_id]
    if step_ns is not None:
        by_slice.append(literal_column(f"(rollup_cells.bucket_ns - {int(origin_ns or 0)}) / {int(step_ns)}"))
    # A timeseries at its tier's step has one cell per (slice, point): SQLite's GROUP BY (a
    # sorter) would group nothing, and cost 4× a plain scan (10M demo, 24 h by project: 632k VM
    # steps against 160k for one pass). Then the cells are read once, measures and sketch
    # together; so are a summary's edge minutes (at most 14 cells a group on either side: one
    # statement instead of two). Otherwise cells are summed per group in SQL, then their sketches read.
    # So are reads of a few cells in all, as the matching slices and the window's buckets bound
    # them: a second statement costs more than summing them here (a PostgreSQL round trip each;
    # a 14-day summary read 9 statements, 3 of them for a few hundred day cells). The tiers read
    # in one pass share one statement, those grouped in SQL two (sums, then sketches).
    buckets: dict[int, int] = {}
    for tier, a, b in ranges:
        buckets[tier] = buckets.get(tier, 0) + (b - a) // (tier * 10**9)

    def one_pass(tier: int) -> bool:
        few = len(keyed) * max(1, buckets[tier]) <= _FEW_CELLS
        return step_ns == tier * 10**9 or tier == _MINUTE_S and step_ns is None or few

    passes = {tier: one_pass(tier) for tier in buckets}
    single = tuple(r for r in ranges if passes[r[0]])
    summed = tuple(r for r in ranges if not passes[r[0]])
    nt = len(by_slice)
    for kind in q.kinds if q.level == "step" else (None,):
        cells = [c.c.part == q.parts[kind]]
        if listed:
            cells.append(in_ids(conn, c.c.slice_id, list(keyed)))
        sketches: list[tuple[tuple[Any, ...], bytes]] = []
        if single:
            stmt = select(*by_slice, *[c.c[m] for m in MEASURES], c.c.sketch).where(*cells)
            rows = _rows(conn, _ranges(stmt, single))
            _add_sums(aggs, keyed, rows, nt, want_class)
            sketches += [(row[:nt], row[-1]) for row in rows]
        if summed:
            grouped = _ranges(select(*by_slice, *[_sum(c.c[m]) for m in MEASURES]).where(*cells), summed,
                              group_by=by_slice)  # fmt: skip
            _add_sums(aggs, keyed, _rows(conn, grouped), nt, want_class)
            sketch_reads = _ranges(select(*by_slice, c.c.sketch).where(*cells), summed)
            sketches += [(row[:nt], row[-1]) for row in _rows(conn, sketch_reads)]
        keys: list[tuple[Any, ...]] = []
        gids: list[int] = []
        blobs: list[bytes] = []
        index: dict[tuple[Any, ...], int] = {}
        for head, blob in sketches:
            k = keyed.get(head[0])
            if k is None:
                continue
            key = k[0] + head[1:] + ((k[1],) if want_class else ())
            gid = index.get(key)
            if gid is None:
                gid = index[key] = len(keys)
                keys.append(key)
            gids.append(gid)
            blobs.append(blob)
        add_packed([aggs[key].bins for key in keys], gids, blobs)


def _sum(column: Any) -> Any:
    """A measure's sum: exact integers (``int_sum``), floats for the sums of squares (0023)."""
    return func.sum(column) if column.name in ROLLUP_SQUARES else int_sum(column)


def _add_sums(aggs: dict[tuple[Any, ...], Agg], keyed: dict[int, Any], rows: list[tuple[Any, ...]], nt: int,
              want_class: bool) -> None:  # fmt: skip
    """Rows of (slice id, [point], measures…) into the aggregates of their slices' groups."""
    nm = len(MEASURES)
    for row in rows:
        k = keyed.get(row[0])
        if k is None:
            continue
        attrs, eclass, status, fclass = k
        key = attrs + row[1:nt] + ((eclass,) if want_class else ())
        agg = aggs.get(key)
        if agg is None:
            agg = aggs[key] = Agg()
        _count(agg, row[nt : nt + nm], status, fclass)


def _count(agg: Agg, vals: Sequence[Any], status: str, fclass: str | None) -> None:
    """Add one row's measures and outcome (its error class, or a classified ok run) to a group."""
    agg.sums = list(map(_plus, agg.sums, vals))
    if status == "error":
        n = int(vals[0])
        cls = error_class_of(status, fclass)
        agg.errors += n
        agg.classes[cls] = agg.classes.get(cls, 0) + n
        agg.null_class_errors |= fclass is None
    elif fclass is not None:
        agg.classified_ok = True


def _read_joined(scan: _Scan, aggs: dict[tuple[Any, ...], Agg]) -> None:
    """The cubes of member sets (``tags``, ``full``: slices are many, cells few per slice): join
    each cell to its slice."""
    conn, q, ranges, origin_ns, step_ns = scan
    s, c = rollup_slices, rollup_cells
    gcols, joins = _group_columns(q, s)
    if step_ns is not None:
        # The point's index, by integer division (both dialects truncate integer division; the
        # operands are ints we made, so inlining them is safe).
        gcols.append(literal_column(f"(rollup_cells.bucket_ns - {int(origin_ns or 0)}) / {int(step_ns)}"))
    conditions = _conditions(q, s)
    # Cells first: the (part, tier, bucket) prefix of their key is the window; slices are then
    # looked up by primary key.
    with_slices: Any = c.join(s, s.c.slice_id == c.c.slice_id)
    for m, on in joins:
        with_slices = with_slices.join(m, on)
    ng = len(gcols)
    want_class = "error_class" in q.group_by
    outcome = [s.c.status, s.c.failure_class]
    for kind in q.kinds if q.level == "step" else (None,):
        where = [c.c.part == q.parts[kind], *conditions]
        # One pass, a row per cell (``full`` cells are few per slice, so grouping in SQL would
        # save little): group values, outcome, measures and sketch, summed here.
        keys = [*gcols, *outcome]
        stmt = select(*keys, *[c.c[m] for m in MEASURES], c.c.sketch).select_from(with_slices).where(*where)
        rows = _rows(conn, _ranges(stmt, ranges))
        _add_outcomes(aggs, [r[:-1] for r in rows], ng, want_class)
        groups: list[tuple[Any, ...]] = []
        gids: list[int] = []
        index: dict[tuple[Any, ...], int] = {}
        for row in rows:
            key = row[:ng] + (error_class_of(row[ng], row[ng + 1]),) if want_class else row[:ng]
            gid = index.get(key)
            if gid is None:
                gid = index[key] = len(groups)
                groups.append(key)
            gids.append(gid)
        add_packed([aggs[key].bins for key in groups], gids, [r[-1] for r in rows])


def _add_outcomes(aggs: dict[tuple[Any, ...], Agg], rows: list[tuple[Any, ...]], ng: int, want_class: bool) -> None:
    """Rows of (group values…, status, failure class, measures…) into the aggregates."""
    for row in rows:
        status, fclass = row[ng], row[ng + 1]
        key = row[:ng] + (error_class_of(status, fclass),) if want_class else row[:ng]
        agg = aggs.get(key)
        if agg is None:
            agg = aggs[key] = Agg()
        _count(agg, row[ng + 2 :], status, fclass)


def _ranges(stmt: Any, ranges: Sequence[tuple[int, int, int]], *, group_by: Sequence[Any] = ()) -> Any:
    """``stmt`` over the cells of each of ``ranges`` (tier, bucket range), one range scan each: one
    statement, a UNION ALL of them when there are several (each grouped by ``group_by``)."""
    c = rollup_cells.c
    parts = [stmt.where(c.tier == tier, c.bucket_ns >= lo, c.bucket_ns < hi) for tier, lo, hi in ranges]
    if group_by:
        parts = [p.group_by(*group_by) for p in parts]
    return parts[0] if len(parts) == 1 else union_all(*parts)


def error_class_of(status: str, failure_class: str | None) -> str | None:
    """The error_class group: the stored failure class; unknown for a failure without one."""
    return failure_class if failure_class is not None else ("unknown" if status == "error" else None)


def _rows(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    # Plain tuples from the driver: the rows here need no type processing (ints and strings),
    # and skipping SQLAlchemy's per-row wrapping halves the fetch. Statements stay cached.
    return list(conn.execute(stmt).cursor.fetchall())
