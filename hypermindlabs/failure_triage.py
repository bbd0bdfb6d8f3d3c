"""Contract path kept for importers: failure triage lives in the :mod:`hypermindlabs.triage` package."""

from hypermindlabs.triage import (
    ALGORITHM_VERSION,
    FAILURE_CLASSES,
    TAXONOMY_VERSION,
    Failure,
    classify_failure,
    cluster_state,
    normalize_message,
)

__all__ = [
    "ALGORITHM_VERSION",
    "FAILURE_CLASSES",
    "TAXONOMY_VERSION",
    "Failure",
    "classify_failure",
    "cluster_state",
    "normalize_message",
]
