"""Percentile math: log-mapped bins hold every value within 1 % and quantiles match nearest rank."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypermindlabs.core.sketch import (
    RELATIVE_ACCURACY,
    ZERO_BIN,
    bin_of,
    bin_value,
    nearest_rank,
    quantile,
    quantiles,
    sketch_of,
)

TOLERANCE = RELATIVE_ACCURACY * (1 + 1e-9)  # the bound, up to float rounding at bin edges


def _rel(estimate: float, exact: float) -> float:
    return 0.0 if estimate == exact else abs(estimate - exact) / abs(exact)


def _lognormal(n: int, seed: int, median: float, sigma: float) -> list[float]:
    rng = random.Random(seed)
    return [median * math.exp(rng.gauss(0.0, sigma)) for _ in range(n)]


@pytest.mark.parametrize(
    "value",
    [1e-6, 0.001, 0.37, 1.0, 1.01, 2.0, 9.99, 250.0, 1234.5678, 30_000.0, 86_400_000.0, 3.1e9],
    ids=lambda v: f"{v:g} ms",
)
def test_every_value_is_within_one_percent_of_its_bin_representative(value: float) -> None:
    assert _rel(bin_value(bin_of(value)), value) <= TOLERANCE


def test_zero_has_its_own_bin_whose_value_is_zero() -> None:
    assert bin_of(0.0) == ZERO_BIN
    assert bin_value(ZERO_BIN) == 0.0
    assert quantile({ZERO_BIN: 3}, 0.5) == 0.0


@pytest.mark.parametrize("bad", [-1.0, float("nan")], ids=["negative", "nan"])
def test_negative_or_nan_values_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        bin_of(bad)


def test_bins_are_ordered_like_values() -> None:
    values = sorted(_lognormal(2000, 1, 500.0, 2.0))
    keys = [bin_of(v) for v in values]
    assert keys == sorted(keys)


DATASETS = {
    "one value": [42.0],
    "two values": [1.0, 1000.0],
    "constant": [7.5] * 50,
    "uniform 1..1000": [float(i) for i in range(1, 1001)],
    "log-normal latencies": _lognormal(5000, 7, 800.0, 0.9),
    "heavy tail": _lognormal(3000, 11, 50.0, 2.5),
    "with zeros": [0.0] * 30 + [float(i) for i in range(1, 71)],
    "sub-millisecond": [i / 1000 for i in range(1, 400)],
}


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_sketch_quantiles_are_within_one_percent_of_the_nearest_rank_value(name: str, q: float) -> None:
    values = DATASETS[name]
    assert _rel(quantile(sketch_of(values), q), nearest_rank(values, q)) <= TOLERANCE


def test_nearest_rank_is_the_ceil_q_n_th_smallest_value() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert nearest_rank(values, 0.5) == 50.0
    assert nearest_rank(values, 0.95) == 95.0  # not 96: 0.95 * 100 is 95.00000000000001 in floats
    assert nearest_rank(values, 0.99) == 99.0
    assert nearest_rank(values, 0.0) == 1.0
    assert nearest_rank(values, 1.0) == 100.0
    assert nearest_rank([3.0, 1.0, 2.0], 0.5) == 2.0


def test_merging_sketches_is_adding_bin_counts() -> None:
    a, b = _lognormal(700, 1, 100.0, 1.0), _lognormal(300, 2, 2000.0, 0.5)
    merged = sketch_of(a)
    for k, n in sketch_of(b).items():
        merged[k] = merged.get(k, 0) + n
    assert merged == sketch_of(a + b)
    for q in (0.5, 0.95, 0.99):
        assert _rel(quantile(merged, q), nearest_rank(a + b, q)) <= TOLERANCE


def test_quantiles_answer_several_ranks_in_one_pass_in_the_order_asked() -> None:
    bins = sketch_of(float(i) for i in range(1, 101))
    p99, p50, p95 = quantiles(bins, [0.99, 0.5, 0.95])
    assert _rel(p50, 50.0) <= TOLERANCE and _rel(p95, 95.0) <= TOLERANCE and _rel(p99, 99.0) <= TOLERANCE


def test_an_empty_sketch_has_no_quantiles() -> None:
    assert quantiles({}, [0.5, 0.99]) == [None, None]
    assert quantiles({5: 0}, [0.5]) == [None]


def test_a_quantile_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError):
        quantile({1: 1}, 1.5)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=1e9, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.95, 0.99]),
)
def test_any_values_any_percentile_stays_within_one_percent(values: list[float], q: float) -> None:
    assert _rel(quantile(sketch_of(values), q), nearest_rank(values, q)) <= TOLERANCE


def _reference_quantiles(bins: dict[int, int], qs: list[float]) -> list[float | None]:
    # Walk the bins in key order to each rank, one value at a time: the definition, not the code.
    values = [bin_value(k) for k in sorted(bins) for _ in range(bins[k])]
    return [nearest_rank(values, q) if values else None for q in qs]


_BINS = st.dictionaries(
    st.one_of(st.just(ZERO_BIN), st.integers(-700, 2500)), st.integers(0, 40), max_size=60
)


@settings(max_examples=300, deadline=None)
@given(_BINS, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5))
def test_quantiles_equal_the_bin_by_bin_walk(bins: dict[int, int], qs: list[float]) -> None:
    # quantiles() finds each rank by bisecting the cumulative counts (zero counts included).
    assert quantiles(bins, qs) == _reference_quantiles(bins, qs)


def test_quantiles_refuse_negative_counts_but_an_empty_total_has_none() -> None:
    with pytest.raises(ValueError, match="negative"):
        quantiles({3: 2, 4: -1}, [0.5])
    assert quantiles({3: -1, 4: 1}, [0.5]) == [None]  # nothing counted: no quantile, as before


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.dictionaries(
    st.one_of(st.just(ZERO_BIN), st.integers(-700, 40_000)), st.integers(-3, 200), max_size=30)), max_size=25),
    st.lists(st.dictionaries(st.integers(-700, 2500), st.integers(1, 5), max_size=5), min_size=5, max_size=5))
def test_add_packed_adds_each_blob_into_its_group_as_dicts_would(cells, start) -> None:  # noqa: ANN001
    from hypermindlabs.core.sketch import add_packed, pack

    groups = [dict(s) for s in start]
    expected = [dict(s) for s in start]
    for g, bins in cells:
        for k, c in bins.items():
            expected[g][k] = expected[g].get(k, 0) + c
    add_packed(groups, [g for g, _ in cells], [pack(b) for _, b in cells])
    # A key a merge brings to zero may stay as a zero entry; every other count is equal.
    assert [{k: v for k, v in g.items() if v} for g in groups] == [{k: v for k, v in e.items() if v} for e in expected]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.one_of(st.just(ZERO_BIN), st.integers(-40_000, 40_000)), st.integers(-(2**31) + 1, 2**31 - 1),
                       max_size=40))
def test_both_decoders_read_every_form_alike(bins: dict[int, int]) -> None:
    from hypermindlabs.core.sketch import _decode_many, pack, unpack

    blob = pack(bins)
    keys, counts, owner = _decode_many([blob])
    pairs = sorted((k, c) for k, c in bins.items() if c)
    assert list(zip(keys.tolist(), counts.tolist(), strict=True)) == list(unpack(blob).items()) == pairs
    assert set(owner.tolist()) <= {0}
