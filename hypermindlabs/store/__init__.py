"""The event store: every SQL statement of the product, on SQLite or PostgreSQL by URL.

:class:`EventStore` is the one interface; SQLite/PostgreSQL differences live in
:mod:`~hypermindlabs.store.dialect` only; the tables in :mod:`~hypermindlabs.store.schema`
and the Alembic migrations that build them. The store imports nothing above ``core``: what
happens to an event after it is stored (rollups, exported series, triage) is passed in.
"""

from hypermindlabs.store.deadline import ReadTimeout, begin_deadline, end_deadline
from hypermindlabs.store.dialect import is_read_timeout
from hypermindlabs.store.event_store import (
    AppendHook,
    AppendResult,
    CommitHook,
    Enricher,
    EventStore,
    Rejection,
    RunPage,
    migrate_schema,
    normalize_url,
    run_conditions,
    schema_includes,
    schema_version,
)

__all__ = [
    "ReadTimeout",
    "begin_deadline",
    "end_deadline",
    "is_read_timeout",
    "AppendHook",
    "AppendResult",
    "CommitHook",
    "Enricher",
    "EventStore",
    "Rejection",
    "RunPage",
    "migrate_schema",
    "schema_includes",
    "normalize_url",
    "run_conditions",
    "schema_version",
]
