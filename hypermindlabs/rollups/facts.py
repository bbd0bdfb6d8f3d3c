"""What a finished run contributes to the rollups: facts, cubes, slice keys, cells. Pure.

A *fact* is one finished run (level ``run``) or one step of a finished run (level ``step``).
Every fact is dated by its **run's start time**, and a step counts only once its run event is
stored: the run list (``GET /api/v1/runs``) selects runs by start time, so every rollup number
has an exact drill-down, and children stored before their run get counted with the run's
dimensions once it arrives (after :meth:`EventStore._backfill_dimensions` filled them in).

A *cube* materializes facts under one slice key at some time tiers (bucket sizes). Cheap cubes
keep few dimensions and compress well (query cost follows buckets, not events); ``full`` keeps
every dimension and every set member (run tags and tools used), so any filter combination has
an exact answer, at the price of about one rollup row per run. See docs/api-metrics.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hypermindlabs.core.record import event_tokens, run_tokens
from hypermindlabs.core.sketch import bin_of
from hypermindlabs.core.vocabulary import ROLLUP_MEASURES

__all__ = [
    "MINUTE",
    "QUARTER",
    "HOUR",
    "DAY",
    "TIERS",
    "Cube",
    "CUBES",
    "KIND_CODES",
    "part_of",
    "part_of_key",
    "MEASURES",
    "SliceKey",
    "Accumulator",
    "slice_id",
    "add_run",
    "add_step",
]

MINUTE, QUARTER, HOUR, DAY = 60, 900, 3600, 86400
TIERS: tuple[int, ...] = (MINUTE, QUARTER, HOUR, DAY)
_NS = 1_000_000_000

#: Summable measures of a cell (the shared vocabulary's, which the table columns use too).
MEASURES: tuple[str, ...] = ROLLUP_MEASURES

#: (level, cube, kind, project, scenario, model, tool, status, failure_class, mkey, mvalue, members)
SliceKey = tuple[Any, ...]


@dataclass(frozen=True)
class Cube:
    """A materialized view: the dimensions it keeps, how set members are kept, its tiers (s).

    ``members``: ``none`` (no tags, no tools); ``tool`` or ``tag`` (one row per tool the run used,
    or per tag of the run: serves queries on tools, or on a single tag key); ``tags`` (the whole
    set of the run's tags, no tools: serves any combination of tag filters and groups); ``all``
    (the whole set of tags and tools: serves anything). ``tag`` cubes keep a failed run's
    root-cause cluster as one more member, ``cluster``, for regression attribution.
    Status and failure class are part of every cube.
    """

    code: int  # stored in every cell: stable, never reused
    name: str
    level: str
    dims: tuple[str, ...]
    members: str
    tiers: tuple[int, ...]  # finest first (the accumulator sums the coarser ones from the finest)

    def __post_init__(self) -> None:
        if not self.tiers or list(self.tiers) != sorted(set(self.tiers)) or any(t not in TIERS for t in self.tiers):
            raise ValueError(f"cube {self.name}: tiers must be distinct TIERS, finest first, not {self.tiers}")


# Which cube at which tiers trades ingest work (each fact adds to one cell per cube and tier; a
# batch writes each cell it touched once) for query work (rows read per bucket). CUBES is in
# order of cost: the planner takes the first cube that answers a query at each tier.
#
# - The minute tier keeps the run level's ``full``: it answers every run query exactly and covers
#   window edges, but holds about one cell per run, so reading it costs what those minutes' runs
#   number (an hour is ~3,700 cells at 10M demo events). ``total`` keeps minutes too (migration
#   0021): a window's minute edges without any condition (a summary of "the last 24 h" starts
#   mid-quarter) and a 1-minute timeseries read a cell per outcome and minute (17× fewer at 10M).
#   ``core`` minutes were tried and dropped (0022): 2.2× fewer cells than ``full`` at 10M, none
#   fewer at 1M, for 7 bytes an event.
# - Narrow cubes (0022) keep one dimension or member and the outcome: ``project``, ``tool_only``
#   (a row per tool the run used), ``tag_only`` (a row per tag), and at the step level ``model``
#   (with the step kind). Every slice of a wider cube multiplies its dimensions by status ×
#   failure class, and most such combinations hold one or two facts a bucket: at 10M, 24 h of
#   ``core`` quarters are 8,614 cells where (quarter, project, outcome) are 2,462, and 7 days of
#   ``tool`` days 7,801 where (day, tool, outcome) are 1,440. Queries grouped or filtered by
#   that one dimension (the dashboards' by-project, by-tool and by-model panels) read the narrow
#   cube. They cost 10 bytes an event at 1M: a step ``tool`` cube (37,000 cells at 1M) and
#   ``tool_only`` hours (12,900) were left out to keep the store within 500 bytes an event.
# - Step facts are 7× the runs: at minutes they were 42 % of all cells at 1M events, so the step
#   level stops at quarters — step answers are widened to whole quarters (or whole hours when
#   only the step ``full`` cube answers them, see rollups.query.resolution), and their timeseries
#   steps are multiples of that; step ``core`` skips hours (step queries read quarters where run
#   queries read hours).
# - The quarter tier serves windows up to about two days at 50–200 points, hours serve weeks,
#   days serve long summaries. Tools (a dashboard variable) get quarters, hours and days; tags
#   (up to 64 per run, each a cell per tier) hours and days, so a one-tag query reads ``full``
#   minutes only within the hour edges of its window. ``tags`` (migration 0018) keeps a run's
#   whole tag set without its tools at hours and days: a query on two or more tags read ``full``
#   minutes across its window (103,000 cells for 24 h at 10M events, 330 ms); its tag
#   combinations are few (4,000 slices at 1M against 15,000 for ``full``).
CUBES: tuple[Cube, ...] = (
    Cube(1, "total", "run", (), "none", (MINUTE, QUARTER, HOUR, DAY)),
    Cube(9, "project", "run", ("project",), "none", (QUARTER, HOUR, DAY)),
    Cube(2, "core", "run", ("project", "scenario", "model"), "none", (QUARTER, HOUR, DAY)),
    Cube(10, "tool_only", "run", (), "tool", (QUARTER, DAY)),
    Cube(7, "tool", "run", ("project", "scenario", "model"), "tool", (QUARTER, HOUR, DAY)),
    Cube(11, "tag_only", "run", (), "tag", (HOUR, DAY)),
    Cube(3, "tag", "run", ("project", "scenario", "model"), "tag", (HOUR, DAY)),
    Cube(8, "tags", "run", ("project", "scenario", "model"), "tags", (HOUR, DAY)),
    Cube(4, "full", "run", ("project", "scenario", "model"), "all", (MINUTE,)),
    Cube(12, "model", "step", ("kind", "model"), "none", (QUARTER, DAY)),
    Cube(5, "core", "step", ("kind", "project", "scenario", "model", "tool"), "none", (QUARTER, DAY)),
    Cube(6, "full", "step", ("kind", "project", "scenario", "model", "tool"), "all", (HOUR,)),
)
_CUBE_CODES: dict[tuple[str, str], int] = {(c.level, c.name): c.code for c in CUBES}
#: Stable numbers of the step kinds in :func:`part_of` (0: the run level).
KIND_CODES: dict[str | None, int] = {None: 0, "llm": 1, "tool": 2, "retrieval": 3, "policy": 4}


def part_of(cube: Cube, kind: str | None) -> int:
    """The cells' partition of a cube (and step kind): queries read one partition's range."""
    return cube.code * 16 + KIND_CODES[kind]


def part_of_key(key: SliceKey) -> int:
    return _CUBE_CODES[key[0], key[1]] * 16 + KIND_CODES[key[2]]


def slice_id(key: SliceKey) -> int:
    """A stable 63-bit id of a slice key: the same on every machine, in every rebuild."""
    digest = hashlib.blake2b(orjson.dumps(key), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


class Accumulator:
    """The cells of a batch, pre-aggregated in memory: (slice, tier, bucket) → measures and the
    latency sketch ``{bin: count}`` of the cell's facts.

    Signed, so a run can be retracted and re-added. Slice keys are interned to small ints
    first: cells are then keyed by int tuples, which hash fast.

    A fact adds to its slice's cell at the key's **finest** tier only; the coarser tiers' cells are
    summed from those finest cells once, in :meth:`nonzero` (the tiers nest: a minute lies in one
    quarter, a quarter in one hour, an hour in one day). Where a batch holds many facts per cell
    (a busy store: tens of runs a minute) that is one cell update per fact and key instead of one
    per tier (up to four), and a sum over few cells at the end; the integer measures and sketch
    counts come out the same in any order.
    """

    __slots__ = ("keys", "_key_index", "_tiers", "_cells", "retracted", "_start", "_buckets")

    def __init__(self) -> None:
        self.keys: list[SliceKey] = []
        self._key_index: dict[SliceKey, int] = {}
        self._tiers: list[tuple[int, ...]] = []  # per interned key: its cube's tiers, finest first
        # (slice, finest-tier bucket) → [measures, sketch {bin: count}]: one lookup per fact and key.
        self._cells: dict[tuple[int, int], list[Any]] = {}
        self.retracted = False
        # The finest buckets of the last start time added: a run and all its steps share their run's start.
        self._start: int | None = None
        self._buckets: dict[int, int] = {}

    def add(self, keys: Sequence[tuple[SliceKey, tuple[int, ...]]], start_ns: int, measures: list[int],
            bin_: int, sign: int) -> None:  # fmt: skip
        cells, index = self._cells, self._key_index
        if sign < 0:
            self.retracted = True
            measures = [-v for v in measures]
        if start_ns != self._start:
            self._start, self._buckets = start_ns, {t: start_ns - start_ns % (t * _NS) for t in TIERS}
        buckets = self._buckets
        for key, tiers in keys:
            kid = index.get(key)
            if kid is None:
                kid = index[key] = len(self.keys)
                self.keys.append(key)
                self._tiers.append(tiers)
            ck = (kid, buckets[tiers[0]])
            cell = cells.get(ck)
            if cell is None:
                cells[ck] = [[measures], {bin_: sign}]
            else:
                cell[0].append(measures)
                sk = cell[1]
                sk[bin_] = sk.get(bin_, 0) + sign

    @property
    def cells(self) -> dict[tuple[int, int, int], list[Any]]:
        """Every cell at every tier of its key: (slice, tier, bucket) → [measures, sketch]."""
        tiers_of = self._tiers
        out: dict[tuple[int, int, int], list[Any]] = {}
        coarse: dict[tuple[int, int, int], tuple[list[list[Any]], list[dict[int, int]]]] = {}
        for (kid, bucket), (facts, sketch) in self._cells.items():
            v = facts[0] if len(facts) == 1 else list(map(sum, zip(*facts, strict=True)))
            tiers = tiers_of[kid]
            out[(kid, tiers[0], bucket)] = [v, sketch]
            for tier in tiers[1:]:
                ck = (kid, tier, bucket - bucket % (tier * _NS))
                got = coarse.get(ck)
                if got is None:
                    coarse[ck] = ([v], [sketch])
                else:
                    got[0].append(v)
                    got[1].append(sketch)
        for ck, (vs, sketches) in coarse.items():
            if len(vs) == 1:
                out[ck] = [vs[0], dict(sketches[0])]
                continue
            merged: dict[int, int] = {}
            for sk in sketches:
                for b, n in sk.items():
                    merged[b] = merged.get(b, 0) + n
            out[ck] = [list(map(sum, zip(*vs, strict=True))), merged]
        return out

    def nonzero(self) -> dict[tuple[int, int, int], tuple[list[int], dict[int, int]]]:
        """The cells that change something, with their sketch deltas (a retraction and a re-add
        of the same run cancel)."""
        cells = self.cells
        if not self.retracted:
            # Only additions: every count and measure is positive, nothing cancels.
            return {k: (v[0], v[1]) for k, v in cells.items()}
        out = {}
        for k, (v, sketch) in cells.items():
            sk = {b: c for b, c in sketch.items() if c}
            if sk or any(v):
                out[k] = (v, sk)
        return out


def _tags(run: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = run["tags"]
    tags = orjson.loads(raw) if isinstance(raw, str | bytes) else raw or {}
    return tuple(sorted(("tag." + k, v) for k, v in tags.items()))


_RUN_CUBES = tuple(c for c in CUBES if c.level == "run")
_STEP_CUBES = tuple(c for c in CUBES if c.level == "step")
# Which of the dimensions each cube keeps (the others are None in its slice keys), in key order.
_RUN_KEPT = tuple((c, tuple(d in c.dims for d in ("project", "scenario", "model"))) for c in _RUN_CUBES)
_STEP_KEPT = tuple((c, tuple(d in c.dims for d in ("project", "scenario", "model", "tool"))) for c in _STEP_CUBES)


def add_run(acc: Accumulator, run: Mapping[str, Any], children: Sequence[Mapping[str, Any]], sign: int = 1,
            *, steps: Iterable[Mapping[str, Any]] | None = None) -> None:  # fmt: skip
    """Add (sign=+1) or retract (sign=-1) a finished run's run-level fact, computed from its run
    event and all its children; and add the step facts of ``steps`` (default: all children)."""
    start = run["start_ns"]
    p, s, m, status, fc = run["project"], run["scenario"], run["model"], run["status"], run["failure_class"]
    tag_members = _tags(run)
    tools = {c["tool"] for c in children if c["tool"] is not None}
    if run["tool"] is not None:
        tools.add(run["tool"])
    members = tuple(sorted([("tool", t) for t in tools] + list(tag_members)))
    # The tag cube also keeps a run's root-cause cluster as a member (``cluster``, never a tag
    # key): failed runs per cluster, what regression attribution compares.
    cluster = (("cluster", run["cluster_id"]),) if run.get("cluster_id") is not None else ()
    tok = run_tokens(run, children)
    tool_calls = sum(1 for c in children if c["kind"] == "tool")
    llm_calls = sum(1 for c in children if c["kind"] == "llm")
    dur = run["end_ns"] - start
    # The squares as floats (exact below 2^53; see ROLLUP_MEASURES): a run's tokens squared can pass 2^63.
    measures = [1, dur // 1000, *tok, tool_calls, llm_calls, float(sum(tok) ** 2), float(tool_calls**2)]
    keys: list[tuple[SliceKey, tuple[int, ...]]] = []
    for cube, (kp, ks, km) in _RUN_KEPT:
        cp, cs, cm = p if kp else None, s if ks else None, m if km else None
        if cube.members == "none":
            keys.append((("run", cube.name, None, cp, cs, cm, None, status, fc, None, None, ()), cube.tiers))
        elif cube.members in ("tool", "tag"):
            for mk, mv in members if cube.members == "tool" else members + cluster:
                if (mk == "tool") == (cube.members == "tool"):
                    keys.append((("run", cube.name, None, cp, cs, cm, None, status, fc, mk, mv, ()), cube.tiers))
        else:
            kept = members if cube.members == "all" else tag_members
            keys.append((("run", cube.name, None, cp, cs, cm, None, status, fc, None, None, kept), cube.tiers))
    acc.add(keys, start, measures, bin_of(dur / 1e6), sign)
    for c in children if steps is None else steps:
        add_step(acc, start, tag_members, c, sign)


def add_step(acc: Accumulator, run_start_ns: int, tag_members: tuple[tuple[str, str], ...],
             step: Mapping[str, Any], sign: int = 1) -> None:  # fmt: skip
    """Add one step fact (dated by its run's start, carrying its run's tags)."""
    kind, p, s, m, tool = step["kind"], step["project"], step["scenario"], step["model"], step["tool"]
    status, fc = step["status"], step["failure_class"]
    dur = step["end_ns"] - step["start_ns"]
    tok = event_tokens(step)
    measures = [1, dur // 1000, *tok, 0, 0, float(sum(tok) ** 2), 0.0]
    keys: list[tuple[SliceKey, tuple[int, ...]]] = []
    for cube, (kp, ks, km, kt) in _STEP_KEPT:
        members = tag_members if cube.members == "all" else ()
        dims = (p if kp else None, s if ks else None, m if km else None, tool if kt else None)
        keys.append((("step", cube.name, kind, *dims, status, fc, None, None, members), cube.tiers))
    acc.add(keys, run_start_ns, measures, bin_of(dur / 1e6), sign)
