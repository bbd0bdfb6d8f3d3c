"""What untrusted text may contain, decided once for events and query parameters alike. Pure.

NUL is refused everywhere: PostgreSQL cannot store it in text (one NUL failed a whole batch) and
SQLite stores it silently, so the two backends would disagree. Identifiers (run and event ids)
are also free of control characters, line/paragraph separators and bidirectional formatting
characters, which can make one id display as another. Numbers are ASCII digits only: Python's
``int()`` and ``\\d`` also take fullwidth and other scripts' digits, which no client means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["NUL", "nul_path", "forbidden_in_identifier", "ascii_int", "MAX_INT_DIGITS"]

NUL = "\x00"
# C0 controls and DEL, C1 controls, U+2028/U+2029, and the bidi marks, embeddings, overrides and
# isolates (Unicode TR9): ALM, LRM, RLM, LRE..RLO, LRI..PDI.
_IDENTIFIER_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMES = {"\u2028": "U+2028 LINE SEPARATOR", "\u2029": "U+2029 PARAGRAPH SEPARATOR"}
# An int64 has 19 digits: longer ASCII numbers are out of every range this product accepts.
MAX_INT_DIGITS = 19
_ASCII_INT = re.compile(r"[0-9]{1,19}")


def nul_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first NUL in ``value`` (a key or a string, at any depth), else None.

    >>> nul_path({"a": ["ok", "x\\x00"]}, "attributes")
    'attributes.a'
    >>> nul_path({"k\\x00": 1}, "attributes")
    'attributes'
    """
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return path
            found = nul_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for item in value:
            found = nul_path(item, path)
            if found is not None:
                return found
    return None


def forbidden_in_identifier(value: str) -> str | None:
    """A description of the first character an identifier may not hold, else None.

    >>> forbidden_in_identifier("run\\u202e1")
    'U+202E'
    >>> forbidden_in_identifier("équipe/α/42") is None
    True
    """
    m = _IDENTIFIER_FORBIDDEN.search(value)
    if m is None:
        return None
    ch = m.group()
    if ch == NUL:
        return "NUL"
    return _NAMES.get(ch, f"U+{ord(ch):04X}")


def ascii_int(raw: str) -> int | None:
    """``raw`` as a non-negative integer if it is 1–19 ASCII digits, else None (no sign, no ``_``)."""
    return int(raw) if _ASCII_INT.fullmatch(raw) else None
