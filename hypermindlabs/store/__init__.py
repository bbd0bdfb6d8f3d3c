"""The event store: every SQL statement of the product, on SQLite or PostgreSQL by URL.

:class:`EventStore` is the one interface; SQLite/PostgreSQL differences live in
:mod:`~hypermindlabs.store.dialect` only; the tables in :mod:`~hypermindlabs.store.schema`
and the Alembic migrations that build them. The store imports nothing above ``core``: what
happens to an event after it is stored (rollups, exported series, triage) is passed in.
"""

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
    schema_version,
)

__all__ = [
    "AppendHook",
    "AppendResult",
    "CommitHook",
    "Enricher",
    "EventStore",
    "Rejection",
    "RunPage",
    "migrate_schema",
    "normalize_url",
    "run_conditions",
    "schema_version",
]
