"""Attribution, as Honeycomb's BubbleUp does for a selection: which tag values and failure
clusters are over-represented among a finding's failing (or slow) runs now, against the same
slice's failing (or slow) runs in the baseline. Pure.

For every (tag key, value) and every cluster, the share of the current selection that has it is
compared with its share of the baseline selection; the values whose share rose most (the *lift*,
in absolute points) explain what the regression concentrates in: a release rolled out, one
tier, one cluster. A value present in every run (a key with one value) has no lift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Facet", "Attribution", "attribute", "attribute_counts"]


@dataclass(frozen=True)
class Facet:
    """What attribution knows of one selected run: its tags and its failure cluster."""

    tags: Mapping[str, str]
    cluster: str | None = None


@dataclass(frozen=True)
class Attribution:
    kind: str  # "tag" or "cluster"
    key: str
    value: str
    baseline_share: float
    current_share: float

    @property
    def lift(self) -> float:
        return self.current_share - self.baseline_share


def _counts(facets: Sequence[Facet]) -> Counter[tuple[str, str, str]]:
    c: Counter[tuple[str, str, str]] = Counter()
    for f in facets:
        for k, v in f.tags.items():
            c["tag", k, v] += 1
        if f.cluster is not None:
            c["cluster", "cluster", f.cluster] += 1
    return c


def attribute(current: Sequence[Facet], baseline: Sequence[Facet], *, top: int = 5,
              min_lift: float = 0.1) -> list[Attribution]:  # fmt: skip
    """The ``top`` values whose share among the selected runs rose most (by at least ``min_lift``).

    >>> now = [Facet({"release": "2.4.0"}, "c1")] * 9 + [Facet({"release": "2.3.0"}, "c2")]
    >>> before = [Facet({"release": "2.3.0"}, "c2")] * 10
    >>> [(a.key, a.value, round(a.lift, 2)) for a in attribute(now, before)]
    [('release', '2.4.0', 0.9), ('cluster', 'c1', 0.9)]
    """
    return attribute_counts(_counts(current), len(current), _counts(baseline), len(baseline), top=top,
                            min_lift=min_lift)  # fmt: skip


def attribute_counts(cur: Mapping[tuple[str, str, str], int], n_c: int, base: Mapping[tuple[str, str, str], int],
                     n_b: int, *, top: int = 5, min_lift: float = 0.1) -> list[Attribution]:  # fmt: skip
    """:func:`attribute` from counts: ``cur``/``base`` map ``(kind, key, value)`` to how many of the
    ``n_c``/``n_b`` selected runs have it (what the rollup cubes keep).

    >>> [(a.value, a.current_share) for a in attribute_counts({("tag", "env", "prod"): 3}, 4, {}, 0)]
    [('prod', 0.75)]
    """
    if not n_c:
        return []
    out = [
        Attribution(kind, key, value, base.get((kind, key, value), 0) / n_b if n_b else 0.0, k / n_c)
        for (kind, key, value), k in cur.items()
    ]
    out = [a for a in out if a.lift >= min_lift]
    out.sort(key=lambda a: (-a.lift, a.kind != "tag", a.key, a.value))
    return out[:top]
