"""``format_timestamp``: the RFC 3339 text every answer carries, against the strftime reference."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypermindlabs.core.events import MAX_TIME_NS, MIN_TIME_NS, format_timestamp, parse_timestamp

NS = 10**9


def _reference(unix_nano: int) -> str:
    secs, frac = divmod(unix_nano, NS)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z" if frac else f"{base}Z"


def test_format_timestamp_writes_the_reference_text_and_parses_back_over_the_accepted_years() -> None:
    rng = random.Random(12)
    edges = [MIN_TIME_NS, MAX_TIME_NS - 1, 0, 1, NS - 1, 951_782_400 * NS, 4_107_542_399 * NS + 999_999_999]
    values = edges + [rng.randrange(MIN_TIME_NS, MAX_TIME_NS) // (q := rng.choice([1, 1000, 10**6, NS])) * q for _ in range(20_000)]
    for ns in values:
        text = format_timestamp(ns)
        assert text == _reference(ns), ns
        if MIN_TIME_NS <= ns < MAX_TIME_NS:
            assert parse_timestamp(text, "t") == ns, text
