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
from dataclasses import dataclass

from hypermindlabs.core.buckets import cover
from hypermindlabs.core.filters import Filters
from hypermindlabs.core.vocabulary import DIMENSIONS, RUN_DIMENSIONS, STEP_KINDS
from hypermindlabs.rollups.facts import CUBES, Cube

__all__ = ["MetricsQuery", "auto_step", "cover", "plan", "resolution", "GROUP_BY", "STEP_KINDS", "MAX_GROUP_BY",
           "MAX_POINTS", "DEFAULT_WINDOW_NS"]  # fmt: skip

GROUP_BY: tuple[str, ...] = (*DIMENSIONS, "kind", "error_class")
NICE_STEPS_S: tuple[int, ...] = (
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400,
)  # fmt: skip
DEFAULT_WINDOW_NS = 24 * 3600 * 10**9
MAX_POINTS = 2000
MAX_GROUP_BY = 3
_NS = 10**9


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
    #: Most points (series × steps) a timeseries answer may hold; None: no cap (trusted callers).
    max_points: int | None = None

    @property
    def level(self) -> str:
        return "run" if self.kinds == ("run",) else "step"


def auto_step(window_ns: int, multiple_of_s: int = 60) -> int:
    """The nice step (s), a multiple of ``multiple_of_s`` (the query's :func:`resolution`), giving
    the number of points closest to 100, within 50–200 when possible.

    >>> auto_step(24 * 3600 * 10**9), auto_step(14 * 86400 * 10**9), auto_step(3600 * 10**9)
    (900, 10800, 60)
    >>> auto_step(3600 * 10**9, 900), auto_step(24 * 3600 * 10**9, 3600)
    (900, 3600)
    """
    window_s = max(window_ns / _NS, 60.0)
    steps = [s for s in NICE_STEPS_S if s % multiple_of_s == 0] or [multiple_of_s]
    return min(steps, key=lambda s: (not 50 <= window_s / s <= 200, abs(math.log(window_s / s / 100))))


# -- planning -----------------------------------------------------------------------------------
def member_keys(q: MetricsQuery) -> list[str]:
    keys: list[str] = []
    if q.level == "run" and (q.filters.tool or "tool" in q.group_by):
        keys.append("tool")
    keys += [f"tag.{k}" for k, _ in q.filters.tags]
    keys += [g for g in q.group_by if g.startswith("tag.") and g not in keys]
    return keys


def _dims_used(q: MetricsQuery) -> set[str]:
    dims = set(RUN_DIMENSIONS) if q.level == "run" else set(DIMENSIONS)
    return {d for d in dims if getattr(q.filters, d) or d in q.group_by} | (
        {"kind"} if q.level == "step" else set()
    )


def _capable(cube: Cube, q: MetricsQuery) -> bool:
    if cube.level != q.level or not _dims_used(q) <= set(cube.dims):
        return False
    keys = member_keys(q)
    if cube.members == "none":
        return not keys
    if cube.members == "tool":
        # One row per tool used: exact when each tool is its own group or one tool is asked for.
        return keys == ["tool"] and ("tool" in q.group_by or len(q.filters.tool) == 1)
    if cube.members == "tag":
        # One row per tag: exact for one tag key (a run has one value per key).
        return len(keys) == 1 and keys[0].startswith("tag.")
    if cube.members == "tags":
        # The whole tag set: exact for any tag keys, not for tools.
        return all(k.startswith("tag.") for k in keys)
    return True


def _tier_cubes(q: MetricsQuery) -> dict[int, Cube]:
    """For each tier, the cheapest cube that answers ``q`` exactly (CUBES is ordered by cost)."""
    out: dict[int, Cube] = {}
    for cube in CUBES:
        if _capable(cube, q):
            for tier in cube.tiers:
                out.setdefault(tier, cube)
    # A tier only a costlier cube keeps (step ``full`` hours between step ``core`` quarters and
    # days) would read more rows per bucket than the finer tier's cube: skip it.
    cost = {c.code: i for i, c in enumerate(CUBES)}
    kept: dict[int, Cube] = {}
    for tier in sorted(out):
        if not kept or cost[out[tier].code] <= min(cost[c.code] for c in kept.values()):
            kept[tier] = out[tier]
    return kept


def plan(q: MetricsQuery) -> dict[int, Cube]:
    """Per tier, the cube read there (the planner's choice); windows must be whole buckets of the
    finest (see :func:`resolution`)."""
    tiers = _tier_cubes(q)
    if not tiers:  # pragma: no cover - a ``full`` cube serves every query of its level
        raise AssertionError("no cube answers this query")
    return tiers


def resolution(filters: Filters, kinds: tuple[str, ...], group_by: tuple[str, ...]) -> int:
    """The finest tier (s) any cube answering this query keeps: its window is widened to whole
    buckets of it, and a timeseries step must be a multiple of it.

    One minute at the run level; a quarter for step kinds, an hour when only the step ``full``
    cube answers (a tag filter on steps, say).
    """
    probe = MetricsQuery(filters=filters, kinds=kinds, group_by=group_by, from_ns=0, to_ns=0,
                         requested_from_ns=0, requested_to_ns=0)  # fmt: skip
    return min(plan(probe))
