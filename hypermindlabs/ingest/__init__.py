"""Ingest doors: request bodies and files (JSON, NDJSON) → validated events → one store append.

Every door (``POST /api/v1/events``, ``hypermind-obs ingest``, the demo loader, ``RunManager``)
goes through :func:`ingest_objects`, so an event is validated and counted the same way whichever
door it came in by.
"""

from hypermindlabs.ingest.bodies import BodyError, collector_paused, ingest_objects, iter_file_batches, split_body

__all__ = ["BodyError", "collector_paused", "ingest_objects", "iter_file_batches", "split_body"]
