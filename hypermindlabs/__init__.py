"""hypermind-obs: observability, metrics and a regression dashboard for LLM-agent runs.

The public surface; everything else is an implementation detail. Names are resolved on first use
(PEP 562), so ``import hypermindlabs.core`` stays free of SQLAlchemy, Flask and the OTel SDK.

>>> from hypermindlabs import EventStore, RunManager
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypermindlabs.config import ConfigError, Settings
    from hypermindlabs.core.errors import EventValidationError, FieldError, QueryError
    from hypermindlabs.core.events import RunEvent, parse_event
    from hypermindlabs.core.filters import Filters
    from hypermindlabs.sdk import RunManager
    from hypermindlabs.store import AppendResult, EventStore
    from hypermindlabs.triage import Failure, classify_failure
    from hypermindlabs.web import create_app
    from hypermindlabs.wiring import Pipeline, build_pipeline

__all__ = [
    "AppendResult",
    "ConfigError",
    "EventStore",
    "EventValidationError",
    "Failure",
    "FieldError",
    "Filters",
    "Pipeline",
    "QueryError",
    "RunEvent",
    "RunManager",
    "Settings",
    "build_pipeline",
    "classify_failure",
    "create_app",
    "parse_event",
]

__version__ = "0.1.0"

_WHERE: dict[str, str] = {
    "AppendResult": "hypermindlabs.store",
    "ConfigError": "hypermindlabs.config",
    "EventStore": "hypermindlabs.store",
    "EventValidationError": "hypermindlabs.core.errors",
    "Failure": "hypermindlabs.triage",
    "FieldError": "hypermindlabs.core.errors",
    "Filters": "hypermindlabs.core.filters",
    "Pipeline": "hypermindlabs.wiring",
    "QueryError": "hypermindlabs.core.errors",
    "RunEvent": "hypermindlabs.core.events",
    "RunManager": "hypermindlabs.sdk",
    "Settings": "hypermindlabs.config",
    "build_pipeline": "hypermindlabs.wiring",
    "classify_failure": "hypermindlabs.triage",
    "create_app": "hypermindlabs.web",
    "parse_event": "hypermindlabs.core.events",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'hypermindlabs' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
