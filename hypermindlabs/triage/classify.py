"""Failure triage: put a failed step into the taxonomy and fingerprint it into a stable cluster.

Pure: no I/O, no clock, no environment, no randomness and no ``hash()``, so the same failure gets
the same cluster id on any machine, in any order, after any restart.

    >>> f = classify_failure(
    ...     kind="tool", error_type="ReadTimeout", tool="web_search",
    ...     error_message="HTTPSConnectionPool(host='api.example.com', port=443): "
    ...     "Read timed out. (read timeout=30)")
    >>> f.failure_class, f.template
    ('tool_timeout', 'HTTPSConnectionPool(host=<str>, port=<n>): Read timed out. (read timeout=<n>)')
    >>> f.label
    'tool_timeout · web_search · Read timed out. (read timeout=<n>)'

The rules, the taxonomy and when to bump the versions are documented in ``docs/triage.md``.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from itertools import chain

from hypermindlabs.triage.normalize import (
    _CONNECTION_POOL_PREFIX_RE,
    _DIGIT_MASK,
    _LABEL_TEMPLATE_MAX_CHARS,
    _MAX_SCAN_CHARS,
    _meaningful_lines,
    _normalize_lines,
    _template,
    _truncate,
    as_text,
    normalize_message,
)
from hypermindlabs.triage.rules import (
    _ANCHOR_WORDS,
    _ANCHORS,
    _EXIT_STATUS_RE,
    _FIRST_WEAK,
    _PROGRAM_ERROR_WORDS,
    _PROGRAM_ERRORS,
    _RULES,
    _STRONG_TYPES,
    _TIMEOUT,
    _TO_WORDS,
    _TYPE_PRIORITY,
    _TYPE_WORD_SET,
    _TYPE_WORDS,
    _WEAK_TYPES,
    _WORD_SET,
    _rule_matches,
    _status,
    _status_family,
)
from hypermindlabs.triage.taxonomy import (
    _CLASS_SET,
    ALGORITHM_VERSION,
    FAILURE_CLASSES,
    HINTS,
    TAXONOMY_VERSION,
    Failure,
    make_failure,
)

__all__ = [
    "ALGORITHM_VERSION",
    "FAILURE_CLASSES",
    "TAXONOMY_VERSION",
    "Failure",
    "classify_failure",
    "cluster_state",
    "normalize_message",
]

# --------------------------------------------------------------------------------------------------
# Classification.


def _match(
    kind: str, short_type: str, text: str, words: list[bytes], has_tool: bool
) -> tuple[tuple[str, str] | None, bool]:
    """The rule match, and whether it was decided before the HTTP status was read.

    Up to that point every test reads digits only through ``\\d``, counts and positions and the
    literal ``0``, never a digit's value, so the match holds for every text with the same digit mask
    (see ``_DECISION_MEMO``). From the status on (``429`` vs ``129``) it does not.
    """
    hits = _WORD_SET.intersection(words)  # one pass over the words: anchors, type names, built-ins
    anchored = _ANCHOR_WORDS & hits if hits else hits
    if not anchored:
        candidates: tuple[int, ...] | list[int] = ()
    elif len(anchored) == 1:
        (word,) = anchored
        candidates = _ANCHORS[word]
    else:  # a rule anchored by two hit words appears twice: tried twice, the same answer
        candidates = sorted(chain.from_iterable(map(_ANCHORS.__getitem__, anchored)))
    for position in candidates:
        if position >= _FIRST_WEAK:
            break
        family, sub, needles, pattern = _RULES[position]
        if needles:
            for needle in needles:
                if needle in text:
                    break
            else:
                continue
        if pattern is None or pattern.search(text) is not None:
            return (family, sub), True
    hit = _STRONG_TYPES.get(short_type)
    if hit is not None:
        return hit, True
    mentioned = _TYPE_WORD_SET & hits
    if mentioned:
        return _TYPE_WORDS[min(mentioned, key=_TYPE_PRIORITY.__getitem__)], True
    return _match_after_status(kind, short_type, text, hits, candidates, has_tool), False


def _match_after_status(
    kind: str, short_type: str, text: str, hits: frozenset[bytes], candidates: Sequence[int], has_tool: bool
) -> tuple[str, str] | None:
    status = _status(text)
    if status is not None:
        return _status_family(status)
    for position in candidates:
        if position >= _FIRST_WEAK and _rule_matches(position, text):
            return _RULES[position][0], _RULES[position][1]
    hit = _WEAK_TYPES.get(short_type)
    if hit is not None:
        return hit
    if kind == "tool" or (kind == "run" and has_tool):
        if _EXIT_STATUS_RE.search(text):
            return "tool_execution_error", "exit_status"
        if short_type in _PROGRAM_ERRORS or _PROGRAM_ERROR_WORDS & hits:
            return "tool_execution_error", ""
    return None


_INFRA_FAMILIES = frozenset({_TIMEOUT, "upstream_error", "rate_limit", "authentication"})


def _resolve(kind: str, text: str, matched: tuple[str, str] | None) -> tuple[str, str]:
    """Turn a rule match into (class, hint key), applying what the step kind implies."""
    family, sub = matched if matched is not None else ("", "")
    if family == "policy_violation":
        pass  # a guardrail or filter rejection is a policy violation whichever step raised it
    elif kind == "retrieval":
        # A failed retrieval is a retrieval failure whatever the cause; the cause picks the hint.
        cause = sub if family == "retrieval_failure" else family
        return "retrieval_failure", f"retrieval_failure/{cause}" if cause else "retrieval_failure"
    elif kind == "policy" and family not in _INFRA_FAMILIES:
        return "policy_violation", "policy_violation"
    if family == _TIMEOUT:
        family = "llm_timeout" if kind == "llm" or "apitimeouterror" in text else "tool_timeout"
    if not family:
        return "unknown", "unknown"
    return family, f"{family}/{sub}" if sub else family


def _explicit_class(error_class: object) -> str | None:
    name = as_text(error_class).strip().lower().replace("-", "_").replace(" ", "_")
    return name if name in _CLASS_SET else None


def classify_failure(
    *,
    kind: str,
    error_type: str | None,
    error_message: str | None,
    error_class: str | None = None,
    tool: str | None = None,
    model: str | None = None,
) -> Failure:
    """Classify one failed event (``kind`` is run|llm|tool|retrieval|policy) and fingerprint it.

    Never raises: anything unrecognized is ``unknown``. An explicit ``error_class`` naming a known
    class is trusted; any other value is ignored.
    """
    try:
        return _classify_memo(kind, error_type, error_message, error_class, tool, model)
    except TypeError:  # an unhashable argument: not worth memoizing
        return _classify(kind, error_type, error_message, error_class, tool, model)


def _classify(
    kind: object,
    error_type: object,
    error_message: object,
    error_class: object,
    tool: object,
    model: object,
) -> Failure:
    kind_s = (kind if type(kind) is str else as_text(kind)).strip().lower()
    type_s = (error_type if type(error_type) is str else as_text(error_type)).strip()
    tool_s = (tool if type(tool) is str else as_text(tool)).strip() or None
    model_s = (model if type(model) is str else as_text(model)).strip() or None
    message = error_message if type(error_message) is str else as_text(error_message)
    lines = _meaningful_lines(message[:_MAX_SCAN_CHARS] if len(message) > _MAX_SCAN_CHARS else message)

    joined = "\n".join(lines)
    masked = joined.encode("utf-8", "surrogatepass").translate(_DIGIT_MASK)
    key = (kind_s, type_s, tool_s is not None, masked)
    decided = _DECISION_MEMO.get(key)
    if decided is None:
        text = (f"{type_s}\n{joined}" if type_s else joined).lower()
        words = text.encode("utf-8", "ignore").translate(_TO_WORDS).split()
        matched, digit_free = _match(kind_s, type_s[type_s.rfind(".") + 1 :], text, words, tool_s is not None)
        decided = _resolve(kind_s, text, matched)
        if digit_free:
            if len(_DECISION_MEMO) >= _DECISION_MEMO_MAX:
                _DECISION_MEMO.clear()
            _DECISION_MEMO[key] = decided
    failure_class, hint_key = decided
    if error_class is not None:
        explicit = _explicit_class(error_class)
        if explicit is not None and explicit != failure_class:
            failure_class, hint_key = explicit, explicit

    template = _template(lines, joined, masked) if lines else ""
    if not template:
        template = _normalize_lines([type_s]) if type_s else "<empty>"
    # What failed: the model of an llm step; the tool of a tool, retrieval or policy step (their
    # model is inherited from the run and says nothing about the failure, so it must not split
    # one failure into a cluster per model); for a run's own error, a tool it names or its model.
    subject = model_s if kind_s == "llm" else tool_s or model_s if kind_s == "run" else tool_s
    # Distinct messages share templates (that is what a cluster is): the record is a function of
    # these four, so it is built once per distinct four.
    record_key = (failure_class, hint_key, template, subject)
    failure = _FAILURE_MEMO.get(record_key)
    if failure is not None:
        return failure
    digest = hashlib.sha256(
        f"{ALGORITHM_VERSION}\x1f{failure_class}\x1f{template}\x1f{subject or ''}".encode()
    ).hexdigest()
    short = _CONNECTION_POOL_PREFIX_RE.sub("", template) if "ConnectionPool(" in template else template
    if len(short) > _LABEL_TEMPLATE_MAX_CHARS:
        short = _truncate(short, _LABEL_TEMPLATE_MAX_CHARS)
    label = f"{failure_class} · {subject} · {short}" if subject else f"{failure_class} · {short}"
    failure = make_failure(
        failure_class, digest[:16], template, subject, label, HINTS.get(hint_key) or HINTS[failure_class]
    )
    if len(_FAILURE_MEMO) >= _FAILURE_MEMO_MAX:
        _FAILURE_MEMO.clear()
    _FAILURE_MEMO[record_key] = failure
    return failure


# Memo of (class, hint key) by the step kind, the exception type, whether a tool is named and the
# message with its digits 1-9 masked (the template memo's key, :mod:`normalize`): words, rules and
# type names read digits only through their class, count and position and the literal "0" (which
# the mask keeps), so a match decided before the HTTP status is read holds for every message with
# that key; a match that read the status is not memoized. Never changes a result (property tests
# hold memoized == computed, and fail when the memo ignores the status); bounded, cleared when full.
_DECISION_MEMO: dict[tuple[str, str, bool, bytes], tuple[str, str]] = {}
_DECISION_MEMO_MAX = 8192
# Memo of the record (cluster id, label, hint) by (class, hint key, template, subject): the record
# is a pure function of them. Bounded, cleared when full.
_FAILURE_MEMO: dict[tuple[str, str, str, str | None], Failure] = {}
_FAILURE_MEMO_MAX = 8192

# The same failure often repeats in bursts (a provider outage, a retry loop). The memo never
# changes a result (Failure is immutable); the cold path is fast on its own (bench/triage.py).
_classify_memo = functools.lru_cache(maxsize=4096)(_classify)


# --------------------------------------------------------------------------------------------------
# Trend.

_TREND_Z = 2.0


def cluster_state(current: int, previous: int, *, seen_before_window: bool) -> str:
    """Trend of a cluster between two equally long windows: new|rising|steady|declining|gone.

    ``seen_before_window`` says whether the cluster occurred at any time before the current window.
    A change counts only when it is beyond Poisson noise: |current - previous| / sqrt(current +
    previous) >= 2, so 3 vs 1 is steady but 30 vs 10 is rising.

    >>> cluster_state(5, 0, seen_before_window=False), cluster_state(30, 10, seen_before_window=True)
    ('new', 'rising')
    """
    if current < 0 or previous < 0:
        raise ValueError(f"counts must be >= 0, got current={current}, previous={previous}")
    if current == 0:
        return "gone"
    if previous == 0:
        return "rising" if seen_before_window else "new"
    z = (current - previous) / math.sqrt(current + previous)
    if z >= _TREND_Z:
        return "rising"
    if z <= -_TREND_Z:
        return "declining"
    return "steady"

