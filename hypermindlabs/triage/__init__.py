"""Failure triage, pure: taxonomy, classification rules, message normalization, cluster ids and reports.

:mod:`~hypermindlabs.triage.classify` maps one failure to its class, template and cluster id
(its ``__all__`` is this package's); :mod:`~hypermindlabs.triage.report` turns stored failure
rows into the clusters answer. The SQL that reads those rows lives in the store.
"""

from hypermindlabs.triage.classify import *  # noqa: F403 - the package's surface is classify's
from hypermindlabs.triage.classify import __all__ as __all__
