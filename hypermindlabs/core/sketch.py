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

Stored, a sketch is :func:`pack`'s bytes: its nonzero bins in key order as little-endian int32
``(key, count)`` pairs, 8 bytes a bin, one value per rollup cell (canonical: equal sketches have
equal bytes). Counts are signed: a chunked rebuild may store a retraction before the fact it
cancels. :func:`add_packed` merges many of them at once.

The mapping's parameters and the packing are part of the stored rollups' format: changing them
requires ``hypermind-obs rebuild-rollups``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
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
    "pack",
    "unpack",
    "add_packed",
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


_PAIR = np.dtype("<i4")
_INT32 = (-(2**31), 2**31 - 1)


def pack(bins: Mapping[int, int]) -> bytes:
    """A sketch's stored form: its nonzero bins in key order, (key, count) little-endian int32 pairs.

    >>> unpack(pack({3: 2, -5: 1, 7: 0}))
    {-5: 1, 3: 2}
    """
    flat: list[int] = []
    for k in sorted(bins):
        c = bins[k]
        if c:
            if not _INT32[0] < c <= _INT32[1]:
                raise ValueError(f"a stored sketch's counts are int32, got {c!r} in bin {k}")
            flat += (k, c)
    return np.array(flat, dtype=_PAIR).tobytes()


def unpack(blob: bytes) -> dict[int, int]:
    """The bins of a packed sketch."""
    pairs = np.frombuffer(blob, dtype=_PAIR).reshape(-1, 2)
    return dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))


def add_packed(groups: Sequence[dict[int, int]], gids: Sequence[int], blobs: Sequence[bytes]) -> None:
    """Add packed sketches into bin dicts: ``blobs[i]`` into ``groups[gids[i]]``, in place.

    One vectorized sum over every blob (a read merges thousands of cells into a few groups).
    """
    if not blobs:
        return
    pairs = np.frombuffer(b"".join(blobs), dtype=_PAIR).reshape(-1, 2)
    if not len(pairs):
        return
    lengths = np.fromiter((len(b) // 8 for b in blobs), dtype=np.int64, count=len(blobs))
    gid = np.repeat(np.asarray(gids, dtype=np.int64), lengths)
    keys = pairs[:, 0].astype(np.int64)
    # Bins of real values span a few thousand keys: sum them in a dense (group × bin) array, one
    # pass (a sort of every pair took most of the merge); the zero bin gets the slot below them.
    real = keys != ZERO_BIN
    lo = int(keys[real].min()) - 1 if real.any() else 0
    width = (int(keys[real].max()) if real.any() else 0) - lo + 1
    n_groups = len(groups)
    if n_groups * width > 4_000_000:  # pragma: no cover - a wider spread than latencies have
        _add_sorted(groups, gid, keys, pairs[:, 1])
        return
    slot = np.where(real, keys - lo, 0)
    sums = np.bincount(gid * width + slot, weights=pairs[:, 1], minlength=n_groups * width)
    for cell in np.flatnonzero(sums).tolist():
        g, k = divmod(cell, width)
        key = k + lo if k else ZERO_BIN
        bins = groups[g]
        bins[key] = bins.get(key, 0) + int(sums[cell])


def _add_sorted(groups: Sequence[dict[int, int]], gid: np.ndarray, keys: np.ndarray, counts: np.ndarray) -> None:
    combined = (gid << 32) | (keys + 2**31)
    uniq, inverse = np.unique(combined, return_inverse=True)
    totals = np.bincount(inverse, weights=counts, minlength=len(uniq)).astype(np.int64)
    for c, total in zip(uniq.tolist(), totals.tolist(), strict=True):
        bins = groups[c >> 32]
        key = (c & 0xFFFF_FFFF) - 2**31
        bins[key] = bins.get(key, 0) + total
