"""The rollup accumulator adds each fact at its key's finest tier and sums the coarser tiers from
those cells: the cells must equal adding every fact at every tier, retractions included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hypermindlabs.rollups.facts import CUBES, TIERS, Accumulator, Cube

_NS = 10**9
_KEYS = [((f"k{i}",), cube.tiers) for i, cube in enumerate(CUBES)]
_fact = st.tuples(
    st.lists(st.sampled_from(range(len(_KEYS))), min_size=1, max_size=4, unique=True),
    st.integers(0, 3 * 86_400).map(lambda s: 1_780_000_000 * _NS + s * _NS + 123),  # three days, off-second
    st.lists(st.integers(0, 10**6), min_size=3, max_size=3),
    st.integers(0, 40),
    st.sampled_from([1, 1, 1, -1]),
)


def _reference(facts) -> dict:
    """Every fact at every tier of each of its keys: the definition of a cell."""
    out: dict = {}
    for keys, start, measures, bin_, sign in facts:
        for k in keys:
            key, tiers = _KEYS[k]
            for tier in tiers:
                v, sk = out.setdefault((key, tier, start - start % (tier * _NS)), [[0, 0, 0, 0.0], {}])
                for i, m in enumerate([*measures, float(measures[0] ** 2)]):
                    v[i] += sign * m
                sk[bin_] = sk.get(bin_, 0) + sign
    return {k: (v, {b: c for b, c in sk.items() if c}) for k, (v, sk) in out.items()
            if any(v) or any(sk.values())}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_fact, max_size=60))
def test_the_cells_equal_every_fact_added_at_every_tier(facts) -> None:
    acc = Accumulator()
    for keys, start, measures, bin_, sign in facts:
        acc.add([_KEYS[k] for k in keys], start, [*measures, float(measures[0] ** 2)], bin_, sign)
    got = {(acc.keys[kid], tier, bucket): (list(v), dict(sk)) for (kid, tier, bucket), (v, sk) in acc.nonzero().items()}
    if not any(f[4] < 0 for f in facts):
        assert len(got) == len(acc.cells)  # only additions: every cell is kept
    assert got == _reference(facts)


def test_a_cube_lists_its_tiers_finest_first() -> None:
    assert all(list(c.tiers) == sorted(c.tiers) for c in CUBES)
    for bad in ((), (3600, 60), (60, 60), (120,)):
        try:
            Cube(99, "x", "run", (), "none", bad)
        except ValueError as exc:
            assert "finest first" in str(exc)
        else:
            raise AssertionError(f"tiers {bad} accepted")
    assert set(TIERS) == {60, 900, 3600, 86400}
