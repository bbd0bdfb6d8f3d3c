"""The run-event parser: normalization, units, validation errors that name the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypermindlabs.core.events import (
    EventValidationError,
    RunEvent,
    format_timestamp,
    parse_epoch_text,
    parse_event,
    parse_timestamp,
)

INSTANT_NS = 1_700_000_000_123_456_789


def base(**over):
    ev = {
        "run_id": "run-1",
        "kind": "tool",
        "tool": "web_search",
        "start_time": "2023-11-14T22:13:20Z",
        "duration_ms": 250,
    }
    ev.update(over)
    return ev


@pytest.mark.parametrize(
    "value",
    [
        1_700_000_000,
        1_700_000_000_000,
        1_700_000_000_000_000,
        1_700_000_000_000_000_000,
        "2023-11-14T22:13:20Z",
        "2023-11-14T23:13:20+01:00",
        "2023-11-14t22:13:20.000z",
        1_700_000_000.0,
    ],
    ids=[
        "epoch s",
        "epoch ms",
        "epoch us",
        "epoch ns",
        "rfc3339 Z",
        "rfc3339 offset",
        "rfc3339 lower",
        "float s",
    ],
)
def test_the_same_instant_in_any_unit_parses_to_the_same_nanoseconds(value):
    assert parse_timestamp(value, "start_time") == 1_700_000_000 * 10**9


def test_a_digits_string_is_an_epoch_in_query_text_but_refused_as_an_event_time():
    # Strict parsing (issue #7): an event's epoch is a JSON number; query parameters are text,
    # where ASCII digits are the epoch (Grafana's ${__from} is epoch ms).
    assert parse_epoch_text("1700000000000", "from") == 1_700_000_000 * 10**9
    with pytest.raises(EventValidationError, match="JSON number, not a string"):
        parse_timestamp("1700000000000", "start_time")


def test_fractions_keep_their_precision_in_every_unit():
    assert parse_timestamp("2023-11-14T22:13:20.123456789Z", "t") == INSTANT_NS
    assert parse_timestamp(INSTANT_NS, "t") == INSTANT_NS
    assert parse_timestamp(1_700_000_000_123_456, "t") == INSTANT_NS - 789
    assert parse_timestamp(1_700_000_000_123.5, "t") == 1_700_000_000_123_500_000
    assert parse_timestamp(format_timestamp(INSTANT_NS), "t") == INSTANT_NS


@pytest.mark.parametrize(
    "value, reason",
    [
        (1_000, "outside the years 2000–2100"),
        (5_000_000_000, "outside the years 2000–2100"),
        ("1999-12-31T23:59:59Z", "outside the years 2000–2100"),
        ("2100-01-01T00:00:00Z", "outside the years 2000–2100"),
        ("2023-11-14T22:13:20", "not an RFC 3339"),
        ("2023-02-30T00:00:00Z", "invalid date"),
        ("yesterday", "not an RFC 3339"),
        (True, "expected an RFC 3339"),
        ([1], "expected an RFC 3339"),
        (float("nan"), "finite"),
    ],
    ids=["tiny number", "number between units", "1999", "2100", "no offset", "feb 30", "words", "bool", "list", "nan"],
)
def test_bad_timestamps_are_rejected_naming_the_field(value, reason):
    with pytest.raises(EventValidationError) as err:
        parse_event(base(start_time=value))
    assert err.value.field == "start_time"
    assert reason in err.value.reason


@pytest.mark.parametrize(
    "over, field",
    [
        ({"run_id": None}, "run_id"),
        ({"run_id": ""}, "run_id"),
        ({"run_id": "x" * 129}, "run_id"),
        ({"run_id": "a\nb"}, "run_id"),
        ({"kind": "agent"}, "kind"),
        ({"start_time": None}, "start_time"),
        ({"duration_ms": -1}, "duration_ms"),
        ({"duration_ms": None}, "end_time"),
        ({"end_time": "2023-11-14T22:13:19Z", "duration_ms": None}, "end_time"),
        ({"end_time": "2023-11-14T22:13:21Z", "duration_ms": 5000}, "duration_ms"),
        ({"status": "failed"}, "status"),
        ({"trace_id": "xyz"}, "trace_id"),
        ({"span_id": "0" * 16}, "span_id"),
        ({"tags": {"env": 1}}, "tags.env"),
        ({"tags": {"bad key": "x"}}, "tags.bad key"),
        ({"tags": ["env"]}, "tags"),
        ({"usage": {"input_tokens": -3}}, "usage.input_tokens"),
        ({"usage": {"input_tokens": 1.5}}, "usage.input_tokens"),
        ({"usage": {"tokens": 3}}, "usage.tokens"),
        ({"error": "boom"}, "error"),
        ({"error": {"message": 3}}, "error.message"),
        ({"attributes": [1]}, "attributes"),
        ({"project": 7}, "project"),
        ({"durationMs": 3}, "durationMs"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_invalid_fields_raise_one_error_type_naming_the_field(over, field):
    with pytest.raises(EventValidationError) as err:
        parse_event(base(**over))
    assert err.value.field == field


def test_unknown_kind_lists_the_allowed_kinds():
    with pytest.raises(EventValidationError, match="run, llm, tool, retrieval, policy"):
        parse_event(base(kind="agent"))


def test_event_id_is_deterministic_and_independent_of_the_timestamp_unit():
    a = parse_event(base(start_time="2023-11-14T22:13:20Z"))
    b = parse_event(base(start_time=1_700_000_000_000))
    c = parse_event(base(start_time=1_700_000_000_000, duration_ms=251))
    assert a.event_id == b.event_id != c.event_id
    assert a.trace_id == b.trace_id and len(a.trace_id) == 32 and len(a.span_id) == 16


def test_a_client_event_id_is_kept():
    assert parse_event(base(event_id="my-key-1")).event_id == "my-key-1"


def test_token_proxy_from_characters_is_flagged_as_estimated():
    ev = parse_event(base(kind="llm", usage={"input_chars": 4001, "output_chars": 8}))
    assert (ev.input_tokens, ev.output_tokens, ev.tokens_estimated) == (1001, 2, True)
    real = parse_event(base(kind="llm", usage={"input_tokens": 10, "output_tokens": 2, "input_chars": 99}))
    assert (real.input_tokens, real.tokens_estimated, real.input_chars) == (10, False, 99)


def test_status_defaults_from_the_error():
    assert parse_event(base(error={"type": "ReadTimeout", "message": "timed out"})).status == "error"
    assert parse_event(base()).status == "ok"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["run", "llm", "tool", "ok", "error", "2024-01-01T00:00:00Z", "ab" * 8, "ab" * 16]),
    st.integers(min_value=946_684_800, max_value=4_102_444_799_999_999_999),
)
event_like = st.dictionaries(
    st.sampled_from(["run_id", "kind", "start_time", "end_time", "duration_ms", "status", "tags", "usage",
                     "error", "attributes", "trace_id", "span_id", "project", "event_id", "other"]),
    field_values,
    max_size=10,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, event_like))
def test_for_any_json_value_parsing_succeeds_or_raises_the_one_validation_error(value):
    json.dumps(value)  # only JSON-representable inputs
    try:
        ev = parse_event(value)
    except EventValidationError as exc:
        assert exc.field and exc.reason
    else:
        assert ev.end_time_unix_nano >= ev.start_time_unix_nano
        assert ev.kind in ("run", "llm", "tool", "retrieval", "policy")


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=__import__("datetime").datetime(2000, 1, 1), max_value=__import__("datetime").datetime(2099, 12, 31)),
       st.integers(min_value=0, max_value=999_999_999))  # fmt: skip
def test_rfc3339_parsing_agrees_with_the_standard_library_for_any_date(dt, nanos):
    from datetime import UTC

    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
    expected = int(dt.replace(tzinfo=UTC, microsecond=0).timestamp()) * 10**9 + nanos
    assert parse_timestamp(text, "t") == expected
    assert parse_timestamp(expected / 10**9 if nanos % 10**6 == 0 else expected, "t") == expected


def test_leap_days_are_valid_only_in_leap_years():
    assert parse_timestamp("2024-02-29T00:00:00Z", "t") == 1_709_164_800 * 10**9
    with pytest.raises(EventValidationError):
        parse_timestamp("2023-02-29T00:00:00Z", "t")


def test_a_parsed_event_is_the_same_frozen_record_as_the_dataclass_builds() -> None:
    # Internal: parse_event builds its RunEvent through the slots' descriptors, not __init__.
    import dataclasses

    ev = parse_event({"run_id": "r1", "kind": "llm", "start_time": 1700000000, "duration_ms": 12.5,
                      "model": "m", "tags": {"env": "prod"}, "usage": {"input_chars": 9}})  # fmt: skip
    twin = RunEvent(**{f.name: getattr(ev, f.name) for f in dataclasses.fields(RunEvent)})
    assert type(ev) is RunEvent and ev == twin and hash(ev) == hash(twin) and repr(ev) == repr(twin)
    assert ev.tags == (("env", "prod"),) and ev.input_tokens == 3 and ev.tokens_estimated
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.run_id = "changed"  # type: ignore[misc]
