"""hypermind-obs: observability, metrics and a regression dashboard for LLM-agent runs.

The public surface; everything else is an implementation detail.

>>> from hypermindlabs import EventStore, RunManager
"""

from hypermindlabs.config import ConfigError, Settings
from hypermindlabs.core.events import EventValidationError, RunEvent, parse_event
from hypermindlabs.core.filters import Filters, QueryError
from hypermindlabs.sdk.run_manager import RunManager
from hypermindlabs.store import AppendResult, EventStore
from hypermindlabs.triage.classify import Failure, classify_failure

__all__ = [
    "AppendResult",
    "ConfigError",
    "EventStore",
    "EventValidationError",
    "Failure",
    "Filters",
    "QueryError",
    "RunEvent",
    "RunManager",
    "Settings",
    "classify_failure",
    "create_app",
    "parse_event",
]

__version__ = "0.1.0"


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - thin re-export that keeps Flask import lazy
    """The Flask app factory (:func:`hypermindlabs.web.create_app`)."""
    from hypermindlabs.web import create_app as _create_app

    return _create_app(*args, **kwargs)
