"""Contract path kept for importers: the event contract lives in :mod:`hypermindlabs.core.events`."""

from hypermindlabs.core.events import (
    EventValidationError,
    RunEvent,
    chars_to_tokens,
    format_timestamp,
    parse_event,
    parse_timestamp,
)
from hypermindlabs.core.vocabulary import DIMENSIONS, INHERITED, KINDS, STATUSES

__all__ = [
    "DIMENSIONS",
    "INHERITED",
    "KINDS",
    "STATUSES",
    "EventValidationError",
    "RunEvent",
    "chars_to_tokens",
    "format_timestamp",
    "parse_event",
    "parse_timestamp",
]
