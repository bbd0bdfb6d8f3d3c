"""The run-event contract (DESIGN §2) as typed, frozen records, parsed once at the edge.

Everything that enters the product (HTTP posts, JSONL files, the in-process RunManager) goes
through :func:`parse_event`; whatever it returns is valid, normalized and carries its units in
its field names. Invalid input raises exactly one error type, :class:`EventValidationError`,
which names the offending field.

>>> ev = parse_event({"run_id": "r1", "kind": "run", "start_time": 1700000000, "duration_ms": 1500})
>>> ev.end_time_unix_nano - ev.start_time_unix_nano
1500000000
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from hypermindlabs.core.errors import EventValidationError
from hypermindlabs.core.text import NUL, forbidden_in_identifier, nul_path
from hypermindlabs.core.vocabulary import (
    DIMENSIONS,
    KINDS,
    MAX_ATTRIBUTES_BYTES,
    MAX_CHARS,
    MAX_DIMENSION_LEN,
    MAX_DURATION_NS,
    MAX_ERROR_MESSAGE_LEN,
    MAX_ID_LEN,
    MAX_NAME_LEN,
    MAX_TAG_VALUE_LEN,
    MAX_TAGS,
    MAX_TOKENS,
    STATUSES,
    TAG_KEY_RULE,
    is_tag_key,
)

__all__ = [
    "EventValidationError",
    "RunEvent",
    "parse_event",
    "parse_timestamp",
    "parse_epoch_text",
    "MIN_TIME_NS",
    "MAX_TIME_NS",
    "chars_to_tokens",
]

# A token is about four characters of English text for the tokenizers in use; the proxy is
# flagged as estimated everywhere it is shown.
CHARS_PER_TOKEN = 4

_NS = 1_000_000_000
_MIN_NS = 946_684_800 * _NS  # 2000-01-01T00:00:00Z
_MAX_NS = 4_102_444_800 * _NS  # 2100-01-01T00:00:00Z
MIN_TIME_NS, MAX_TIME_NS = _MIN_NS, _MAX_NS  # every time the product accepts is in [MIN, MAX)
# Epoch units are told apart by magnitude: the 2000–2100 window in each unit does not overlap
# the window in any other, so the inference is unambiguous.
_EPOCH_UNITS: tuple[int, ...] = (_NS, 1_000_000, 1_000, 1)  # ns per s, ms, µs, ns
_EPOCH_UNIT_DIGITS: tuple[tuple[int, int], ...] = tuple((u, len(str(u)) - 1) for u in _EPOCH_UNITS)  # decimals to ns

_ALLOWED_FIELDS = frozenset(
    {
        "event_id", "run_id", "trace_id", "span_id", "parent_span_id", "kind", "name",
        "start_time", "end_time", "duration_ms", "status", "project", "model", "tool",
        "scenario", "tags", "usage", "error", "attributes",
    }
)  # fmt: skip
_USAGE_FIELDS = frozenset({"input_tokens", "output_tokens", "input_chars", "output_chars"})
_ERROR_FIELDS = frozenset({"type", "message", "class"})
# ASCII digits only: ``\d`` would also match fullwidth and other scripts' digits.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|z|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH_TEXT = re.compile(r"([0-9]{1,19})(?:\.([0-9]{1,9}))?")
_HEX = re.compile(r"[0-9a-f]+")
_LOWER_HEX = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One finished span of an agent run, normalized. Times are integer Unix nanoseconds."""

    event_id: str
    run_id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    name: str | None
    start_time_unix_nano: int
    end_time_unix_nano: int
    status: str
    project: str | None = None
    model: str | None = None
    tool: str | None = None
    scenario: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_chars: int | None = None
    output_chars: int | None = None
    tokens_estimated: bool = False
    error_type: str | None = None
    error_message: str | None = None
    error_class: str | None = None
    attributes_json: str = "{}"

    @property
    def duration_ms(self) -> float:
        return (self.end_time_unix_nano - self.start_time_unix_nano) / 1e6

    @property
    def tags_dict(self) -> dict[str, str]:
        return dict(self.tags)

    @property
    def attributes(self) -> dict[str, Any]:
        return orjson.loads(self.attributes_json)


_NEW = object.__new__
#: The slot setters of every RunEvent field, in declaration order (what parse_event builds with).
_SETTERS = tuple(RunEvent.__dict__[f.name].__set__ for f in fields(RunEvent))

_EPOCH = datetime(1970, 1, 1)


def format_timestamp(unix_nano: int) -> str:
    """RFC 3339 in UTC, nanoseconds kept: ``2026-01-15T00:07:13.123456789Z`` (``…13Z`` when whole).

    Twice per listed run and per timeseries point: a naive datetime's ``isoformat`` (whole
    seconds, so no fraction) is half the cost of ``strftime`` on an aware one, same text.
    """
    secs, frac = divmod(unix_nano, _NS)
    base = (_EPOCH + timedelta(seconds=secs)).isoformat()
    return f"{base}.{frac:09d}Z" if frac else f"{base}Z"


def parse_timestamp(value: Any, field: str) -> int:
    """RFC 3339 string or epoch number (unit inferred from magnitude) → Unix nanoseconds.

    >>> parse_timestamp(1700000000, "t") == parse_timestamp("2023-11-14T22:13:20Z", "t")
    True
    """
    t = type(value)
    if t is int:
        # Fast path: integer epochs need no decimal arithmetic.
        for to_ns in _EPOCH_UNITS:
            ns = value * to_ns
            if _MIN_NS <= ns < _MAX_NS:
                return ns
        return _epoch_to_ns(Decimal(value), field)
    if isinstance(value, bool) or value is None:
        raise EventValidationError(field, "expected an RFC 3339 string or an epoch number")
    if isinstance(value, str):
        # Strict: a string is RFC 3339; an epoch is a JSON number (a numeric string is refused
        # rather than guessed at, so "1700000000" and 1700000000 cannot be told apart wrongly).
        s = value.strip()
        try:
            return _rfc3339_to_ns(s, field)
        except EventValidationError:
            if _looks_numeric(s):
                raise EventValidationError(
                    field, "an epoch time is a JSON number, not a string; a string must be RFC 3339 "
                    "(e.g. 2025-01-31T12:00:00Z)"
                ) from None
            raise
    if isinstance(value, int):
        return _epoch_to_ns(Decimal(value), field)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EventValidationError(field, "must be a finite number")
        # repr() is the shortest decimal that round-trips, so 1700000000.123 stays exact.
        text = repr(value)
        whole, dot, frac = text.partition(".")
        if dot and "e" not in text and whole.isdigit():
            # Fast exact path for plain decimals: integer arithmetic on the digits.
            secs = int(whole)
            for to_ns, digits in _EPOCH_UNIT_DIGITS:
                ns = secs * to_ns + int(frac[:digits].ljust(digits, "0") or 0)
                if _MIN_NS <= ns < _MAX_NS:
                    return ns
        return _epoch_to_ns(Decimal(text), field)
    raise EventValidationError(field, f"expected an RFC 3339 string or an epoch number, got {_type(value)}")


def parse_epoch_text(text: str, field: str) -> int:
    """An epoch written in ASCII digits (query parameters: Grafana's ``${__from}`` is epoch ms) → ns.

    The unit is inferred from magnitude as for JSON numbers; a fraction is allowed, a sign,
    exponent, underscore or non-ASCII digit is not.

    >>> parse_epoch_text("1700000000000", "from") == parse_timestamp(1700000000, "from")
    True
    """
    m = _EPOCH_TEXT.fullmatch(text)
    if m is None:
        raise EventValidationError(field, "not an epoch number (ASCII digits, optionally a fraction)")
    if m.group(2) is None:
        return parse_timestamp(int(text), field)
    return _epoch_to_ns(Decimal(text), field)


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _epoch_to_ns(d: Decimal, field: str) -> int:
    for to_ns in _EPOCH_UNITS:
        ns = int(d * to_ns)
        if _MIN_NS <= ns < _MAX_NS:
            return ns
    raise EventValidationError(
        field, f"epoch number {d} is outside the years 2000–2100 in seconds, milliseconds, microseconds and nanoseconds"
    )


def _rfc3339_to_ns(s: str, field: str) -> int:
    m = _RFC3339.fullmatch(s)
    if m is None:
        raise EventValidationError(field, f"not an RFC 3339 timestamp (e.g. 2025-01-31T12:00:00Z): {s[:64]!r}")
    year, month, day, hour, minute, second, frac, tz = m.groups()
    y, mo, d = int(year), int(month), int(day)
    h, mi, sec = int(hour), int(minute), int(second)
    if sec == 60:
        raise EventValidationError(field, f"leap seconds (:60) are not accepted; use :59.999999999: {s[:64]!r}")
    if not (1 <= mo <= 12 and 1 <= d <= _days_in_month(y, mo) and h <= 23 and mi <= 59 and sec <= 59):
        raise EventValidationError(field, f"invalid date or time: {s[:64]!r}")
    offset = 0
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[4:6])
        if hh > 23 or mm > 59:
            raise EventValidationError(field, f"invalid UTC offset {tz}")
        offset = sign * (hh * 3600 + mm * 60)
    secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset
    ns = secs * _NS + (int(frac.ljust(9, "0")) if frac else 0)
    if not _MIN_NS <= ns < _MAX_NS:
        raise EventValidationError(field, "timestamp is outside the years 2000–2100")
    return ns


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def chars_to_tokens(chars: int) -> int:
    """The token proxy used when only text sizes are known (flagged as estimated)."""
    return -(-chars // CHARS_PER_TOKEN)


def _type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _string(
    obj: Mapping[str, Any], key: str, max_len: int, *, required: bool = False, field: str | None = None
) -> str | None:
    """``obj[key]`` as a string; ``field`` is the name errors give (``error.type`` for ``type``)."""
    value = obj.get(key)
    if type(value) is str and 0 < len(value) <= max_len and not value[0].isspace() and NUL not in value:
        return value
    field = field or key
    if value is None:
        if required:
            raise EventValidationError(field, "is required")
        return None
    if not isinstance(value, str):
        raise EventValidationError(field, f"expected a string, got {_type(value)}")
    if NUL in value:
        raise EventValidationError(field, _NUL_REASON)
    if not value.strip():
        if required:
            raise EventValidationError(field, "must not be empty")
        return None
    if len(value) > max_len:
        raise EventValidationError(field, f"longer than {max_len} characters")
    return value


_NUL_REASON = "must not contain NUL (\\x00): no backend can store it in text"


def _identifier(obj: Mapping[str, Any], field: str, *, required: bool) -> str | None:
    value = obj.get(field)
    # Fast path: printable ASCII holds no forbidden character (controls, NUL and the rest are not
    # printable or not ASCII), so the usual id skips the scan for them.
    if (
        type(value) is str and 0 < len(value) <= MAX_ID_LEN and value.isascii() and value.isprintable()
        and not value[0].isspace()
    ):  # fmt: skip
        return value
    if value is None and not required:
        return None
    value = _string(obj, field, MAX_ID_LEN, required=required)
    bad = forbidden_in_identifier(value) if value is not None else None
    if bad is not None:
        raise EventValidationError(
            field, f"must not contain {bad}: identifiers exclude control, line/paragraph separator and bidi "
            "formatting characters"
        )
    return value


def _hex_id(obj: Mapping[str, Any], field: str, size: int) -> str | None:
    value = obj.get(field)
    if value is None or value == "":
        return None
    if type(value) is str and len(value) == size and _LOWER_HEX.fullmatch(value) and value.strip("0"):
        return value
    if not isinstance(value, str):
        raise EventValidationError(field, f"expected a {size}-character hex string, got {_type(value)}")
    v = value.lower()
    if len(v) != size or not _HEX.fullmatch(v):
        raise EventValidationError(field, f"expected a {size}-character hex string (W3C trace context)")
    if v.strip("0") == "":
        raise EventValidationError(field, "must not be all zeros")
    return v


def _count(usage: Mapping[str, Any], key: str) -> int | None:
    value = usage.get(key)
    if value is None:
        return None
    top = MAX_CHARS if key.endswith("_chars") else MAX_TOKENS
    if type(value) is int and 0 <= value <= top:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventValidationError(f"usage.{key}", f"expected a whole number ≥ 0, got {_type(value)}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise EventValidationError(f"usage.{key}", "expected a whole number ≥ 0")
    if value < 0:
        raise EventValidationError(f"usage.{key}", "expected a whole number ≥ 0")
    if value > top:
        raise EventValidationError(f"usage.{key}", f"at most {top:,} (2^{top.bit_length() - 1})")
    return int(value)


def _digest(*parts: object) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse_event(obj: Any) -> RunEvent:
    """Validate and normalize one event object of the contract; raise EventValidationError."""
    if not isinstance(obj, dict):
        raise EventValidationError("$", f"an event must be a JSON object, got {_type(obj)}")
    if not obj.keys() <= _ALLOWED_FIELDS:  # a subset test allocates nothing; the difference only on error
        unknown = obj.keys() - _ALLOWED_FIELDS
        first = sorted(str(k) for k in unknown)[0] or '""'
        raise EventValidationError(first, f"unknown field; allowed: {', '.join(sorted(_ALLOWED_FIELDS))}")

    run_id = _identifier(obj, "run_id", required=True)
    assert run_id is not None  # noqa: S101 - narrowing for the type checker; _identifier raised otherwise
    event_id = _identifier(obj, "event_id", required=False)

    kind = obj.get("kind")
    if kind not in KINDS:
        raise EventValidationError("kind", f"must be one of {', '.join(KINDS)}, got {str(kind)[:32]!r}")

    if obj.get("start_time") is None:
        raise EventValidationError("start_time", "is required")
    start_ns = parse_timestamp(obj["start_time"], "start_time")
    duration = obj.get("duration_ms")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not math.isfinite(duration):
            raise EventValidationError("duration_ms", f"expected a number ≥ 0, got {_type(duration)}")
        if duration < 0:
            raise EventValidationError("duration_ms", "must be ≥ 0")
    if obj.get("end_time") is not None:
        end_ns = parse_timestamp(obj["end_time"], "end_time")
        if end_ns < start_ns:
            raise EventValidationError("end_time", "is before start_time")
        if duration is not None and abs((end_ns - start_ns) / 1e6 - duration) > 1.0:
            raise EventValidationError("duration_ms", "disagrees with end_time - start_time by more than 1 ms")
    elif duration is not None:
        end_ns = start_ns + int(Decimal(repr(duration) if isinstance(duration, float) else duration) * 1_000_000)
        if end_ns >= _MAX_NS:
            raise EventValidationError("duration_ms", "ends after the year 2100")
    else:
        raise EventValidationError("end_time", "end_time or duration_ms is required")
    if end_ns - start_ns > MAX_DURATION_NS:
        raise EventValidationError("end_time" if obj.get("end_time") is not None else "duration_ms",
                                   "an event lasts at most 366 days")  # fmt: skip

    error = obj.get("error")
    error_type = error_message = error_class = None
    if error is not None:
        if not isinstance(error, dict):
            raise EventValidationError("error", f"expected an object {{type, message, class?}}, got {_type(error)}")
        if not error.keys() <= _ERROR_FIELDS:
            extra = error.keys() - _ERROR_FIELDS
            raise EventValidationError(
                f"error.{sorted(map(str, extra))[0]}", "unknown field; allowed: type, message, class"
            )
        error_type = _string(error, "type", MAX_NAME_LEN, field="error.type")
        message = error.get("message")
        if message is not None and not isinstance(message, str):
            raise EventValidationError("error.message", f"expected a string, got {_type(message)}")
        if message and NUL in message:
            raise EventValidationError("error.message", _NUL_REASON)
        # Long tracebacks are cut, not refused: the first lines carry the signal triage uses.
        error_message = message[:MAX_ERROR_MESSAGE_LEN] if message else None
        error_class = _string(error, "class", 64, field="error.class")

    status = obj.get("status")
    if status is None:
        status = "error" if error is not None else "ok"
    elif status not in STATUSES:
        raise EventValidationError("status", f"must be one of {', '.join(STATUSES)}, got {str(status)[:32]!r}")

    dims: dict[str, str | None] = {}
    for d in DIMENSIONS:
        v = obj.get(d)
        # Fast path for the common case (absent, or a plain non-blank string of sane length).
        if v is None or (
            type(v) is str and 0 < len(v) <= MAX_DIMENSION_LEN and not v[0].isspace() and NUL not in v
        ):
            dims[d] = v
        else:
            dims[d] = _string(obj, d, MAX_DIMENSION_LEN)
    name = _string(obj, "name", MAX_NAME_LEN)

    tags_obj = obj.get("tags")
    tags: tuple[tuple[str, str], ...] = ()
    if tags_obj is not None:
        if not isinstance(tags_obj, dict):
            raise EventValidationError("tags", f"expected an object of string → string, got {_type(tags_obj)}")
        if len(tags_obj) > MAX_TAGS:
            raise EventValidationError("tags", f"at most {MAX_TAGS} tags")
        for key, value in tags_obj.items():
            if not isinstance(key, str) or not is_tag_key(key):
                raise EventValidationError(f"tags.{key[:64]}", TAG_KEY_RULE)
            if not isinstance(value, str):
                raise EventValidationError(f"tags.{key}", f"expected a string value, got {_type(value)}")
            if len(value) > MAX_TAG_VALUE_LEN:
                raise EventValidationError(f"tags.{key}", f"longer than {MAX_TAG_VALUE_LEN} characters")
            if NUL in value:
                raise EventValidationError(f"tags.{key}", _NUL_REASON)
        tags = tuple(sorted(tags_obj.items()))

    usage = obj.get("usage")
    in_tok = out_tok = in_chars = out_chars = None
    estimated = False
    if usage is not None:
        if not isinstance(usage, dict):
            raise EventValidationError("usage", f"expected an object, got {_type(usage)}")
        if not usage.keys() <= _USAGE_FIELDS:
            extra = usage.keys() - _USAGE_FIELDS
            raise EventValidationError(
                f"usage.{sorted(map(str, extra))[0]}",
                "unknown field; allowed: input_tokens, output_tokens, input_chars, output_chars",
            )
        in_tok, out_tok = _count(usage, "input_tokens"), _count(usage, "output_tokens")
        in_chars, out_chars = _count(usage, "input_chars"), _count(usage, "output_chars")
        if in_tok is None and in_chars is not None:
            in_tok, estimated = chars_to_tokens(in_chars), True
        if out_tok is None and out_chars is not None:
            out_tok, estimated = chars_to_tokens(out_chars), True

    attributes = obj.get("attributes")
    attributes_json = "{}"
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise EventValidationError("attributes", f"expected an object, got {_type(attributes)}")
        where = nul_path(attributes, "attributes")
        if where is not None:
            raise EventValidationError(where, _NUL_REASON + " (in a key or a value)")
        try:
            raw = orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise EventValidationError("attributes", f"not serializable as JSON: {exc}") from exc
        if len(raw) > MAX_ATTRIBUTES_BYTES:
            raise EventValidationError("attributes", f"larger than {MAX_ATTRIBUTES_BYTES} bytes as JSON")
        attributes_json = raw.decode()

    trace_id = _hex_id(obj, "trace_id", 32)
    span_id = _hex_id(obj, "span_id", 16)
    parent_span_id = _hex_id(obj, "parent_span_id", 16)

    # The idempotency key covers the normalized content, so a retried event (even one whose
    # timestamps were re-serialized in another unit) maps to the same id and never double counts.
    if event_id is None:
        content_key = (
            run_id, trace_id, span_id, parent_span_id, kind, name, start_ns, end_ns, status, dims, tags,
            in_tok, out_tok, in_chars, out_chars, error_type, error_message, error_class, attributes_json,
        )  # fmt: skip
        event_id = "ev_" + _digest(*content_key)[:40]
    if trace_id is None:
        trace_id = _digest("trace", run_id)[:32]
    if span_id is None:
        span_id = _digest("span", run_id)[:16] if kind == "run" else _digest("span", event_id)[:16]

    # Built through the slots' descriptors (_SETTERS), not the frozen dataclass's __init__ (one
    # object.__setattr__ a field): the same frozen RunEvent, ~1 µs less an event.
    ev: RunEvent = _NEW(RunEvent)
    for setter, value in zip(_SETTERS, (
        event_id, run_id, trace_id, span_id, parent_span_id, kind, name, start_ns,
        end_ns, status, dims["project"], dims["model"], dims["tool"], dims["scenario"], tags,
        in_tok, out_tok, in_chars, out_chars, estimated, error_type, error_message, error_class, attributes_json,
    ), strict=True):  # fmt: skip
        setter(ev, value)
    return ev
