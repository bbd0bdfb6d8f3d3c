"""Mergeable latency sketches: DDSketch-style log-mapped bins with ≤ 1 % relative error. Pure.

A value ``v > 0`` goes to the bin ``k = ceil(log_γ v)`` with ``γ = (1 + α) / (1 - α)`` and
``α = 0.01``; every value of bin ``k`` lies in ``(γ^(k-1), γ^k]`` and the bin's representative
``2γ^k / (1 + γ)`` is within ``α`` of each of them (relative). A sketch is just ``{bin: count}``,
so sketches merge by adding counts — in SQL, ``SUM(n) ... GROUP BY bin`` over rollup rows — and
subtract the same way. Zero (a 0 ms span) has its own bin, :data:`ZERO_BIN`, whose value is 0.

Quantiles use the *nearest-rank* definition: the ``q``-quantile of ``n`` sorted values
``x_1 ≤ … ≤ x_n`` is ``x_r`` with ``r = max(1, ceil(q·n))``. The sketch finds the bin holding rank
``r`` and returns its representative, so the answer is within 1 % (relative) of the exact
nearest-rank value.

    >>> bins = sketch_of([1.0, 2.0, 3.0, 4.0, 100.0])
    >>> round(quantile(bins, 0.5), 2)   # exact: 3.0, within 1 %
    2.97
    >>> round(quantile(bins, 0.99), 1)  # exact: 100.0, within 1 %
    100.5

The mapping's parameters are part of the stored rollups' format: changing them requires
``hypermind-obs rebuild-rollups``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from ddsketch.mapping import LogarithmicMapping

__all__ = [
    "RELATIVE_ACCURACY",
    "ZERO_BIN",
    "bin_of",
    "bin_value",
    "sketch_of",
    "quantile",
    "quantiles",
    "nearest_rank",
]

RELATIVE_ACCURACY = 0.01
#: Below every real bin: log_γ of the smallest span (1 ns = 1e-6 ms) is about -690.
ZERO_BIN = -(2**31)

_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)


def bin_of(value: float) -> int:
    """The bin of a non-negative value (e.g. a duration in ms)."""
    if value <= 0.0:
        if value < 0.0 or math.isnan(value):
            raise ValueError(f"sketch values must be ≥ 0, got {value!r}")
        return ZERO_BIN
    return _MAPPING.key(value)


def bin_value(key: int) -> float:
    """The representative value of a bin: within 1 % of every value the bin holds."""
    if key == ZERO_BIN:
        return 0.0
    return _MAPPING.value(key)


def sketch_of(values: Iterable[float]) -> dict[int, int]:
    """Bin counts of some values (for tests and small in-memory sketches)."""
    out: dict[int, int] = {}
    for v in values:
        k = bin_of(v)
        out[k] = out.get(k, 0) + 1
    return out


def _rank(q: float, n: int) -> int:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q!r}")
    return max(1, math.ceil(q * n - 1e-9))


def quantiles(bins: Mapping[int, int], qs: Sequence[float]) -> list[float | None]:
    """Nearest-rank quantiles of a sketch, one per ``q`` (``None`` for an empty sketch)."""
    items = sorted((k, c) for k, c in bins.items() if c)
    n = sum(c for _, c in items)
    if n <= 0:
        return [None for _ in qs]
    if any(c < 0 for _, c in items):
        raise ValueError("a sketch cannot have negative counts")
    ranks = sorted((_rank(q, n), i) for i, q in enumerate(qs))
    out: list[float | None] = [None] * len(qs)
    seen = 0
    j = 0
    for key, count in items:
        seen += count
        while j < len(ranks) and ranks[j][0] <= seen:
            out[ranks[j][1]] = bin_value(key)
            j += 1
        if j == len(ranks):
            break
    return out


def quantile(bins: Mapping[int, int], q: float) -> float | None:
    """One nearest-rank quantile of a sketch (``None`` when empty)."""
    return quantiles(bins, [q])[0]


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The exact nearest-rank quantile of raw values: the reference the sketch is held to."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[_rank(q, len(ordered)) - 1]
