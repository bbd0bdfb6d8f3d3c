"""Regression analysis: which slices got worse than their baseline, how sure we are, and what the
regression concentrates in. Pure statistics (scipy, numpy) over rollup aggregates; the reads and
the API answer live with the rollups (:mod:`hypermindlabs.aggregate.regressions`).

- :mod:`~hypermindlabs.regressions.significance`: one test per metric, vectorized over slices.
- :mod:`~hypermindlabs.regressions.detect`: slicing, false-discovery control, folding, ranking.
- :mod:`~hypermindlabs.regressions.attribution`: BubbleUp-style tag and cluster attribution.

See docs/regressions.md for the method.
"""

from __future__ import annotations

from hypermindlabs.regressions.attribution import Attribution, Facet, attribute, attribute_counts
from hypermindlabs.regressions.detect import (
    METRICS,
    RUN_DIMS,
    Analysis,
    Finding,
    SliceKey,
    SliceStats,
    Source,
    analyze,
    dimension_order,
    slice_dict,
)
from hypermindlabs.regressions.significance import Params

__all__ = [
    "METRICS",
    "RUN_DIMS",
    "Analysis",
    "Attribution",
    "Facet",
    "Finding",
    "Params",
    "SliceKey",
    "SliceStats",
    "Source",
    "analyze",
    "attribute",
    "attribute_counts",
    "dimension_order",
    "slice_dict",
]
