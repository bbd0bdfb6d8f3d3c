"""The shared vocabulary: kinds, statuses, dimensions, the tag-key rule, limits and chunking.

Every module imports these; none retypes them. Metric, label, rule and dashboard *names* are
the other half of the vocabulary and live in :mod:`hypermindlabs.conventions`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TypeVar

__all__ = [
    "KINDS",
    "STEP_KINDS",
    "STATUSES",
    "DIMENSIONS",
    "RUN_DIMENSIONS",
    "INHERITED",
    "TAG_KEY_RE",
    "TAG_KEY_RULE",
    "is_tag_key",
    "MAX_ID_LEN",
    "MAX_DIMENSION_LEN",
    "MAX_NAME_LEN",
    "MAX_TAGS",
    "MAX_TAG_KEY_LEN",
    "MAX_TAG_VALUE_LEN",
    "MAX_ERROR_MESSAGE_LEN",
    "MAX_ATTRIBUTES_BYTES",
    "MAX_TOKENS",
    "MAX_DURATION_NS",
    "MAX_CHARS",
    "MAX_FILTER_VALUE_LEN",
    "PAGE_LIMIT_DEFAULT",
    "PAGE_LIMIT_MAX",
    "SQL_CHUNK",
    "ROLLUP_MEASURES",
    "ROLLUP_SQUARES",
    "chunks",
]

#: Event kinds (DESIGN §2): a run and its child steps.
KINDS: tuple[str, ...] = ("run", "llm", "tool", "retrieval", "policy")
STEP_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k != "run")
STATUSES: tuple[str, ...] = ("ok", "error")
#: The dimension tags of an event, in the order the API lists them.
DIMENSIONS: tuple[str, ...] = ("project", "model", "tool", "scenario")
#: The dimensions that are the run's own (``tool`` selects runs by their steps).
RUN_DIMENSIONS: tuple[str, ...] = ("project", "model", "scenario")
#: What a child event inherits from its run when it omits it.
INHERITED: tuple[str, ...] = ("project", "scenario", "model")

#: Tag keys: 1–64 of [A-Za-z0-9_.-], starting with a letter or ``_`` (events, filters, group_by).
TAG_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
TAG_KEY_RULE = "tag keys are 1–64 of [A-Za-z0-9_.-], starting with a letter or _"

MAX_ID_LEN = 128
MAX_DIMENSION_LEN = 256
MAX_NAME_LEN = 512
MAX_TAGS = 64
MAX_TAG_KEY_LEN = 64
MAX_TAG_VALUE_LEN = 256
#: The error-message cap: stored messages are cut here (and triage scans at most this much).
MAX_ERROR_MESSAGE_LEN = 8192
MAX_ATTRIBUTES_BYTES = 65536
#: Bounds of the usage counts of one event: a trillion tokens (2^40), four times as many characters
#: (their proxy, ceil(chars / 4), then stays within 2^40). Far above any model's context or a long
#: agent run's total, and low enough that the 64-bit integer sums of the rollups and of /metrics
#: hold at least 2^21 events at the bound in one bucket (before: 2^53, and 1,024 such events in an
#: hour overflowed the hour's cells, which failed every later batch of that hour).
MAX_TOKENS = 2**40
MAX_CHARS = 2**42
#: The longest event, 366 days: the rollups' 64-bit sums of durations (µs) then hold 291,000 events
#: at the bound in one bucket (before: anything up to the year 2100, and 3,960 runs of 2026–2099, a
#: client's "never ended" sentinel, overflowed the day's cells and failed every later batch of it).
MAX_DURATION_NS = 366 * 86_400 * 10**9
#: A filter value (query parameter) longer than a stored dimension can never match.
MAX_FILTER_VALUE_LEN = MAX_DIMENSION_LEN

PAGE_LIMIT_DEFAULT = 50
PAGE_LIMIT_MAX = 1000

#: Bound on ``IN (...)`` lists and bulk statements: SQLite allows 32766 parameters, keep well below.
SQL_CHUNK = 500

#: Summable measures of a rollup cell, in this order; ``n`` counts facts (runs or steps). All are
#: integers but the two sums of squares: sums are exact and order-free, so a rebuild reproduces the
#: incremental rows bit for bit. ``tokens_sq`` and ``tool_calls_sq`` are per-run sums of squares
#: (tokens: real and proxy together) for a window's variance of tokens and tool calls per run (the
#: regressions' Welch test); they are floating point (migration 0023), since one run of 3.04 billion
#: tokens squares past 2^63, and 92,000 runs of 10 million tokens in a day sum past it. Exact, and
#: as order-free as the others, while a cell's sum stays below 2^53 (9.0e15); above, rounded to
#: 53 bits (a relative error below 1e-15, which a rebuild may round differently).
ROLLUP_MEASURES: tuple[str, ...] = (
    "n", "duration_us", "input_tokens", "output_tokens", "input_tokens_proxy", "output_tokens_proxy",
    "tool_calls", "llm_calls", "tokens_sq", "tool_calls_sq",
)  # fmt: skip
#: The measures stored as floating point (the sums of squares).
ROLLUP_SQUARES: frozenset[str] = frozenset({"tokens_sq", "tool_calls_sq"})

_T = TypeVar("_T")


def is_tag_key(key: str) -> bool:
    """Whether ``key`` is a valid tag key (:data:`TAG_KEY_RULE`).

    >>> is_tag_key("release"), is_tag_key("9lives"), is_tag_key("a" * 65)
    (True, False, False)
    """
    return TAG_KEY_RE.fullmatch(key) is not None


def chunks(values: Sequence[_T], size: int = SQL_CHUNK) -> Iterator[Sequence[_T]]:
    """``values`` in slices of at most ``size``.

    >>> [list(c) for c in chunks([1, 2, 3], 2)]
    [[1, 2], [3]]
    """
    for i in range(0, len(values), size):
        yield values[i : i + size]
