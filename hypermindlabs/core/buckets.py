"""Whole time buckets of the rollup tiers covering a window (pure; shared by the rollup answers in
``rollups/`` and the store's rollup reads, e.g. ``store/regression_facets.py``)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["cover"]

_NS = 10**9


def cover(from_ns: int, to_ns: int, tiers: Sequence[int]) -> list[tuple[int, int, int]]:
    """Whole buckets covering ``[from, to)``: the coarsest tier in the middle, finer ones at the edges.

    ``tiers`` are bucket sizes in seconds, coarsest first; returns (tier, start ns, end ns) segments.

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
