"""The one field-error base class: bad input names the field it is about and says why.

:class:`EventValidationError` (a bad event) and :class:`QueryError` (a bad query parameter) are
both :class:`FieldError`; the web layer answers any of them with ``400 {"error", "field"}`` in one
handler (:mod:`hypermindlabs.web.params`), the CLI prints ``field: reason``.
"""

from __future__ import annotations

__all__ = ["FieldError", "EventValidationError", "QueryError"]


class FieldError(ValueError):
    """Bad input: ``field`` names what is wrong (a JSON path or a parameter), ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class EventValidationError(FieldError):
    """The one error a bad event raises (``field`` is the event's field, e.g. ``usage.input_tokens``)."""


class QueryError(FieldError):
    """A bad query parameter; the API answers 400 with ``{"error", "field"}``."""
