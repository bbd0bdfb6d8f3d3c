"""Failure triage, pure: taxonomy, classification rules, message normalization, cluster ids and reports.

:mod:`~hypermindlabs.triage.classify` maps one failure to its class, template and cluster id;
:mod:`~hypermindlabs.triage.report` turns stored failure rows into the clusters answer. The
SQL that reads those rows lives in the store.
"""

from hypermindlabs.triage.classify import (
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
