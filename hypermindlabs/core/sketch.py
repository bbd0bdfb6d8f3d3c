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

Stored, a sketch is :func:`pack`'s bytes: its nonzero bins in key order as little-endian
``(key, count)`` pairs, 3 bytes a bin when counts are small (int16 key, int8 count), one value per
rollup cell (canonical: equal sketches have equal bytes). Counts are signed: a chunked rebuild may
store a retraction before the fact it cancels. :func:`add_packed` merges many of them at once.

The mapping's parameters and the packing are part of the stored rollups' format: changing them
requires ``hypermind-obs rebuild-rollups``.
"""

from __future__ import annotations

import functools
import math
import struct
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate

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
    keys = sorted(bins)
    counts = [bins[k] for k in keys]
    cum = list(accumulate(counts))
    if not cum or cum[-1] <= 0 or not any(counts):
        return [None for _ in qs]
    if min(counts) < 0:
        raise ValueError("a sketch cannot have negative counts")
    # Cumulative counts never decrease: the first bin whose count reaches a rank holds it.
    n = cum[-1]
    return [_value_of(keys[bisect_left(cum, _rank(q, n))]) for q in qs]


#: :func:`bin_value`, remembered (answers ask for the same few hundred bins again and again).
_value_of = functools.lru_cache(maxsize=100_000)(bin_value)


def quantile(bins: Mapping[int, int], q: float) -> float | None:
    """One nearest-rank quantile of a sketch (``None`` when empty)."""
    return quantiles(bins, [q])[0]


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The exact nearest-rank quantile of raw values: the reference the sketch is held to."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[_rank(q, len(ordered)) - 1]


_BARE = np.dtype([("k", "<i4"), ("c", "<i4")])  # the untagged form's (int32 key, int32 count) pairs
_INT32 = (-(2**31), 2**31 - 1)
# The compact forms: a tag byte, then (int16 key, int8 or int32 count) pairs; the zero bin's key
# is stored as the int16 minimum (real keys lie within about ±1,100 for 1 ns to 10^9 ms).
_NARROW, _MEDIUM = 1, 2
_PAIRS = {
    _NARROW: np.dtype([("k", "<i2"), ("c", "i1")]),
    _MEDIUM: np.dtype([("k", "<i2"), ("c", "<i4")]),
}
_SHORT_ZERO = -(2**15)
_SHORT = (_SHORT_ZERO, 2**15 - 1)


def pack(bins: Mapping[int, int]) -> bytes:
    """A sketch's stored form: its nonzero bins in key order, little-endian (key, count) pairs.

    Three forms, chosen by the values (so equal sketches have equal bytes): when every count fits
    a signed byte, a tag byte 1 and (int16 key, int8 count) pairs, 3 bytes a bin; when counts are
    larger, tag 2 and (int16, int32) pairs; when a key does not fit int16, bare (int32, int32)
    pairs (the only form before, 8 bytes a bin, still read). A tagged form is padded with a zero
    byte when its length would be a multiple of 8, so a length tells the forms apart.

    >>> unpack(pack({3: 2, -5: 1, 7: 0}))
    {-5: 1, 3: 2}
    >>> len(pack({3: 2, -5: 1})), len(pack({3: 200})), len(pack({70_000: 1})), pack({})
    (7, 7, 8, b'')
    """
    if len(bins) == 1:
        # Most cells a batch writes hold one bin (a new cell, one fact): their few distinct forms
        # are remembered (same bytes as below; a count out of range still raises, never cached).
        ((key, count),) = bins.items()
        return _pack_one(key, count)
    return _pack(bins)


@functools.lru_cache(maxsize=100_000)
def _pack_one(key: int, count: int) -> bytes:
    return _pack({key: count})


def _pack(bins: Mapping[int, int]) -> bytes:
    # The keys sorted alone (ints compare fast; (key, count) pairs take ~4× longer to sort), then
    # interleaved with their counts.
    keys = sorted(bins)
    counts = [bins[k] for k in keys]
    if 0 in counts:
        keys = [k for k, c in zip(keys, counts, strict=True) if c]
        counts = [c for c in counts if c]
    if not keys:
        return b""
    n = len(keys)
    flat = [0] * (2 * n)
    flat[::2], flat[1::2] = keys, counts
    lo_c, hi_c = min(counts), max(counts)
    if not (_INT32[0] < lo_c and hi_c <= _INT32[1]):
        raise ValueError(f"a stored sketch's counts are int32, got {lo_c if lo_c <= _INT32[0] else hi_c!r}")
    zero = keys[0] == ZERO_BIN  # sorted: the zero bin comes first, then real keys ascending
    lo_k = keys[1] if zero and n > 1 else keys[0] if not zero else 0
    if not (_SHORT[0] < lo_k and keys[-1] <= _SHORT[1]) and not (zero and n == 1):
        return struct.pack(f"<{2 * n}i", *flat)
    if zero:
        flat[0] = _SHORT_ZERO
    tag = _NARROW if -128 <= lo_c and hi_c <= 127 else _MEDIUM
    out = struct.pack("<B" + ("hb" if tag == _NARROW else "hi") * n, tag, *flat)
    return out + b"\0" if len(out) % 8 == 0 else out


def unpack(blob: bytes) -> dict[int, int]:
    """The bins of a packed sketch, in stored (key) order.

    One ``struct`` call, not NumPy arrays (:func:`_decode_many` reads many at once): the ingest
    path unpacks one cell at a time, mostly a few bins, where NumPy's per-call overhead is ~5 µs
    and this ~1 µs.
    """
    size = len(blob)
    if size % 8 == 0:
        flat: Sequence[int] = struct.unpack(f"<{size // 4}i", blob)
    else:
        tag = blob[0]
        pairs = (size - 1) // _PAIRS[tag].itemsize  # a padding byte, if any, is no pair
        flat = struct.unpack_from("<" + ("hb" if tag == _NARROW else "hi") * pairs, blob, 1)
        if flat and flat[0] == _SHORT_ZERO:  # sorted: the zero bin comes first
            flat = [ZERO_BIN, *flat[1:]]
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def _decode_many(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, counts, index of the blob) of many packed sketches, one vectorized decode per form.

    The blobs are joined once; per form, a mask of that form's bytes without tag and padding
    bytes leaves its pairs back to back, so no blob is sliced or looked at one by one in Python.
    """
    lens = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    buf = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    starts = np.cumsum(lens) - lens
    forms = np.zeros(len(blobs), dtype=np.int64)
    tagged = lens % 8 != 0  # a tagged form's first byte names it; bare pairs fill whole 8 bytes
    forms[tagged] = buf[starts[tagged]]
    keys, counts, owner = [], [], []
    for form in np.unique(forms).tolist():
        mine = forms == form
        idx = np.flatnonzero(mine)
        dt, head = (_BARE, 0) if form == 0 else (_PAIRS[form], 1)
        n = (lens[idx] - head) // dt.itemsize
        keep = np.repeat(mine, lens)
        if head:
            keep[starts[idx]] = False  # the tag byte
        pad = lens[idx] - head - n * dt.itemsize  # pack's trailing zero byte
        ends = starts[idx] + lens[idx]
        for j in range(int(pad.max(initial=0))):
            keep[(ends - 1 - j)[pad > j]] = False
        pairs = buf[keep].view(dt)
        if not len(pairs):
            continue
        k, c = pairs["k"].astype(np.int64), pairs["c"].astype(np.int64)
        if form:
            k[k == _SHORT_ZERO] = ZERO_BIN
        keys.append(k)
        counts.append(c)
        owner.append(np.repeat(idx, n))
    if not keys:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(keys), np.concatenate(counts), np.concatenate(owner)


#: Up to this many blobs, :func:`add_packed` adds each one's :func:`unpack` (faster than numpy's set-up).
_FEW = 12


def add_packed(groups: Sequence[dict[int, int]], gids: Sequence[int], blobs: Sequence[bytes]) -> None:
    """Add packed sketches into bin dicts: ``blobs[i]`` into ``groups[gids[i]]``, in place.

    One vectorized sum over every blob (a read merges thousands of cells into a few groups); a
    few blobs are added one by one (the arrays' set-up would cost more than the sums).
    """
    if not blobs:
        return
    if len(blobs) <= _FEW:
        for g, blob in zip(gids, blobs, strict=True):
            bins = groups[g]
            for key, count in unpack(blob).items():
                bins[key] = bins.get(key, 0) + count
        return
    keys, counts, owner = _decode_many(blobs)
    if not len(keys):
        return
    gid = np.asarray(gids, dtype=np.int64)[owner]
    # Bins of real values span a few thousand keys: sum them in a dense (group × bin) array, one
    # pass (a sort of every pair took most of the merge); the zero bin gets the slot below them.
    real = keys != ZERO_BIN
    lo = int(keys[real].min()) - 1 if real.any() else 0
    width = (int(keys[real].max()) if real.any() else 0) - lo + 1
    n_groups = len(groups)
    if n_groups * width > 4_000_000:  # pragma: no cover - a wider spread than latencies have
        _add_sorted(groups, gid, keys, counts)
        return
    slot = np.where(real, keys - lo, 0)
    sums = np.bincount(gid * width + slot, weights=counts, minlength=n_groups * width)
    # The nonzero (group, bin) sums as plain lists, group by group (flat indexes are sorted).
    cells = np.flatnonzero(sums)
    owners = cells // width
    offsets = cells - owners * width
    bin_keys = np.where(offsets > 0, offsets + lo, ZERO_BIN).tolist()
    totals = sums[cells].astype(np.int64).tolist()
    bounds = np.searchsorted(owners, np.arange(n_groups + 1)).tolist()
    for g, bins in enumerate(groups):
        a, b = bounds[g], bounds[g + 1]
        if a == b:
            continue
        if not bins:
            bins.update(zip(bin_keys[a:b], totals[a:b], strict=True))
            continue
        for key, total in zip(bin_keys[a:b], totals[a:b], strict=True):
            bins[key] = bins.get(key, 0) + total


def _add_sorted(groups: Sequence[dict[int, int]], gid: np.ndarray, keys: np.ndarray, counts: np.ndarray) -> None:
    combined = (gid << 32) | (keys + 2**31)
    uniq, inverse = np.unique(combined, return_inverse=True)
    totals = np.bincount(inverse, weights=counts, minlength=len(uniq)).astype(np.int64)
    for c, total in zip(uniq.tolist(), totals.tolist(), strict=True):
        bins = groups[c >> 32]
        key = (c & 0xFFFF_FFFF) - 2**31
        bins[key] = bins.get(key, 0) + total
