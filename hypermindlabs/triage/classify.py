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
import re
from dataclasses import dataclass

__all__ = [
    "ALGORITHM_VERSION",
    "FAILURE_CLASSES",
    "TAXONOMY_VERSION",
    "Failure",
    "classify_failure",
    "cluster_state",
    "normalize_message",
]

# Bump when normalization or classification changes what a failure maps to: it is part of every
# cluster id, so a bump regroups everything at once instead of silently splitting old clusters.
ALGORITHM_VERSION = "1"
# Bump when classes are added, removed or renamed (that changes classification: bump both).
TAXONOMY_VERSION = "1"

FAILURE_CLASSES: tuple[str, ...] = (
    "tool_schema_mismatch",
    "tool_execution_error",
    "tool_timeout",
    "llm_timeout",
    "retrieval_failure",
    "policy_violation",
    "rate_limit",
    "context_length_exceeded",
    "authentication",
    "invalid_request",
    "upstream_error",
    "iteration_limit",
    "unknown",
)
_CLASS_SET = frozenset(FAILURE_CLASSES)

_MAX_SCAN_CHARS = 4000  # of the message, after dropping traceback frames
_TEMPLATE_LINES = 3
_TEMPLATE_MAX_CHARS = 240
_TEMPLATE_TOKENS = _TEMPLATE_MAX_CHARS // 2 + 1
_LABEL_TEMPLATE_MAX_CHARS = 80


@dataclass(frozen=True, slots=True)
class Failure:
    """One classified failure: its class, its cluster and what to do about it."""

    failure_class: str
    cluster_id: str  # 16 hex chars of sha256(ALGORITHM_VERSION, class, template, subject)
    template: str  # normalized message template
    subject: str | None  # the tool for tool steps, the model for llm steps
    label: str  # "<class> · <subject> · <short template>"
    hint: str  # remediation hint for the class or the known sub-pattern


# --------------------------------------------------------------------------------------------------
# Hints, keyed "class" or "class/sub-pattern".

_HINTS: dict[str, str] = {
    "tool_schema_mismatch": (
        "The model's tool arguments did not match the tool's schema: tighten the schema (required "
        "fields, enums, types, a described example), enable strict/structured tool calls, and return "
        "the validation error to the model so it can retry."
    ),
    "tool_schema_mismatch/missing_required": (
        "A required argument was missing: mark it required in the tool schema, describe it and add an "
        "example call to the tool description; with strict tool calls the model cannot omit it."
    ),
    "tool_schema_mismatch/invalid_json": (
        "The arguments or output were not valid JSON: enable strict/structured tool calls (JSON mode, "
        "strict: true), raise max_tokens so arguments are not cut off, and re-ask with the parse error."
    ),
    "tool_schema_mismatch/unexpected_argument": (
        "The model sent an argument the tool does not accept: align the schema's property names with "
        "the function signature, set additionalProperties: false and describe every field."
    ),
    "tool_schema_mismatch/invalid_value": (
        "An argument had the wrong type or value: declare types, enums and ranges in the tool schema, "
        "add an example, and validate/coerce before calling the tool."
    ),
    "tool_schema_mismatch/schema_definition": (
        "The provider rejected the tool's schema itself: fix the JSON schema (strict mode needs "
        "additionalProperties: false and every property listed in required) and validate it in CI."
    ),
    "tool_schema_mismatch/unparseable_output": (
        "The model's output did not follow the expected format: use native tool calling or structured "
        "outputs instead of parsing free text, and retry with the parser's error as feedback."
    ),
    "tool_execution_error": (
        "The tool raised while executing: open a sample run, handle the edge case in the tool (empty "
        "or missing data, bad input) and return a structured error to the model instead of raising."
    ),
    "tool_execution_error/exit_status": (
        "The tool's command or sandbox exited non-zero: put stderr in the tool result so the model can "
        "fix its code, and check the sandbox's memory and time limits."
    ),
    "tool_timeout": (
        "The tool call exceeded its timeout: adjust the timeout to the tool's real p95/p99 latency, "
        "retry idempotent calls with exponential backoff, cache repeated calls, run slow tools async."
    ),
    "tool_timeout/connect": (
        "Connecting to the tool's backend timed out: check host, DNS and network from the agent's "
        "environment, keep a short connect timeout with retries, and fail over to a replica."
    ),
    "tool_timeout/statement": (
        "A database statement hit its statement timeout: add an index or a LIMIT, constrain the query "
        "the model generates, or raise statement_timeout for this role only."
    ),
    "llm_timeout": (
        "The model call timed out: stream long generations, lower max_tokens or the prompt size, raise "
        "the client timeout for long requests, retry with backoff and fail over to a faster model."
    ),
    "retrieval_failure": (
        "The retrieval step failed: check the retriever's index and connectivity, and add a fallback "
        "(cached results, keyword search, or answering without context and saying so)."
    ),
    "retrieval_failure/index_missing": (
        "The index or collection does not exist: check the name and environment the retriever points "
        "to, create the index at deployment time rather than lazily, and alert on index drift."
    ),
    "retrieval_failure/dimension_mismatch": (
        "Embedding dimensions do not match the index: query with the same embedding model and "
        "dimensions the index was built with, or rebuild the index."
    ),
    "retrieval_failure/empty_results": (
        "Retrieval returned nothing: check index freshness and ingestion lag, relax filters, score "
        "threshold or top_k, and add a fallback (keyword or hybrid search, an explicit 'no context')."
    ),
    "retrieval_failure/timeout": (
        "The retriever timed out: check the vector store's latency and load, tune the query timeout, "
        "cache hot queries and fall back to a smaller top_k or keyword search."
    ),
    "retrieval_failure/upstream_error": (
        "The vector store or database was unreachable or failing: check its health and the connection "
        "settings (host, port, pool), retry with backoff and fail over to a replica."
    ),
    "retrieval_failure/rate_limit": (
        "The retriever or embedding API was rate limited: batch and cache embeddings, back off with "
        "jitter, and request a quota increase."
    ),
    "retrieval_failure/authentication": (
        "The retriever's credentials were rejected: check or rotate the vector store / embedding API "
        "key and the project or environment it belongs to."
    ),
    "policy_violation": (
        "A guardrail or content filter blocked the step: review the flagged runs; if legitimate, adjust "
        "the tool policy or filter configuration, otherwise add a pre-check evaluator upstream."
    ),
    "policy_violation/content_filter": (
        "The provider's content filter rejected the prompt or completion: see which category fired, "
        "sanitize inputs (including retrieved text and tool output), and request a filter "
        "configuration change if the use is legitimate."
    ),
    "policy_violation/guardrail": (
        "An application guardrail tripped: check whether it is a true positive, tune its threshold, "
        "and add a pre-check evaluator and a safe fallback answer."
    ),
    "policy_violation/tool_policy": (
        "A tool call was blocked by policy: adjust the tool policy (allowlist, argument constraints) if "
        "the action is legitimate, or state the constraint in the tool description so the model stops."
    ),
    "rate_limit": (
        "Rate limit hit: retry with exponential backoff and jitter (honour Retry-After), cap concurrency "
        "with a token bucket, and request a quota increase or spread load across deployments."
    ),
    "rate_limit/quota": (
        "The account's quota or billing limit is exhausted: retrying will not help; add credits or raise "
        "the quota, and alert on spend before it runs out."
    ),
    "context_length_exceeded": (
        "The prompt exceeded the model's context window: truncate or summarize the history, cap tool "
        "outputs and retrieved chunks, or route long inputs to a larger-context model."
    ),
    "authentication": (
        "Credentials were rejected: check and rotate the API key or token, make sure it belongs to the "
        "right project, organization and environment and has access to the model or resource."
    ),
    "invalid_request": (
        "The request was rejected as invalid: fix the parameters (ones this model supports, message "
        "order, tool-call/tool-result pairing) and add a request-shape test for this model."
    ),
    "invalid_request/model_not_found": (
        "The model or deployment is unknown or not enabled for this key: check the model or deployment "
        "name, the region and the project's model access."
    ),
    "upstream_error": (
        "The provider or a dependency failed (5xx, overloaded, dropped connection): retry with "
        "exponential backoff and jitter, and fail over to another model, region or provider."
    ),
    "upstream_error/overloaded": (
        "The provider is overloaded: back off and retry, and fail over to another model or provider "
        "while the overload lasts."
    ),
    "upstream_error/connection": (
        "The dependency was unreachable (refused, reset, DNS or TLS): check the endpoint, DNS, proxy and "
        "certificates from the agent's environment, then retry with backoff."
    ),
    "iteration_limit": (
        "The agent hit its step or recursion limit without finishing: add a clear stop condition or a "
        "final-answer tool, detect repeated identical tool calls, raise the limit only if needed."
    ),
    "unknown": (
        "No rule matched this failure: open a sample run; if it recurs, add a rule (docs/triage.md) "
        "or have the client send error.class."
    ),
}

# --------------------------------------------------------------------------------------------------
# Classification rules.
#
# A rule is (family, sub-pattern, anchor words, needles, pattern). Families are the classes plus
# "timeout", which the step kind resolves to tool_timeout or llm_timeout. A rule is only tried when
# one of its anchor words (lower-case ASCII letters; the text is split on everything else) occurs,
# and it matches when one of its needles (plain substrings of the lower-cased text) occurs and, if
# it has a pattern, the pattern matches too. So the cost is one word split, a set intersection and
# a few substring checks, however many rules there are. Earlier rules win.

_TIMEOUT = "timeout"
_Rule = tuple[str, str, tuple[str, ...], tuple[str, ...], str | None]

# fmt: off
_STRONG_RULES: tuple[_Rule, ...] = (
    # a guardrail or filter rejection is a policy violation whichever step raised it
    ("policy_violation", "content_filter", ("filter", "management", "responsibleaipolicyviolation",
                                            "policy", "contentpolicy", "contentpolicyviolation"),
     ("content_filter", "content filter", "content management policy", "responsibleaipolicyviolation",
      "content_policy", "contentpolicy"), None),
    ("policy_violation", "content_filter", ("flagged", "prompt"),
     ("flagged as potentially violating", "invalid_prompt"), None),
    ("policy_violation", "content_filter", ("safety",), ("_reason",), r"_reason\W+safety"),
    ("policy_violation", "content_filter", ("safety",),
     ("blocked due to ", "blocked because of ", "blocked by "),
     r"blocked (?:due to|because of|by) (?:the )?safety"),
    ("policy_violation", "guardrail", ("guardrail", "guardrails", "tripwire", "jailbreak", "pii", "toxic",
                                       "toxicity"), (), None),
    ("policy_violation", "guardrail", ("injection",), ("prompt injection",), None),
    ("policy_violation", "guardrail", ("refusal",), ("stop_reason",), r"stop_reason\W+refusal"),
    ("policy_violation", "tool_policy", ("policy", "policies"), ("policy violation",), None),
    ("policy_violation", "tool_policy", ("policy", "policies"), (" by ", " per ", " under "),
     r" (?:by|per|under) (?:the |a )?(?:[\w'-]+ )?polic"),
    ("policy_violation", "tool_policy", ("policy", "policies"), ("violates ",),
     r"violates (?:the |our )?(?:[\w-]+ )?polic"),
    ("policy_violation", "tool_policy", ("allowlist", "blocklist", "denylist", "allow", "block", "deny"),
     ("allowlist", "allow-list", "blocklist", "block-list", "denylist", "deny-list"), None),
    ("context_length_exceeded", "", ("context",),
     ("context_length_exceeded", "maximum context length", "context length exceeded", "context length of",
      "context window", "exceeds the context"), None),
    ("context_length_exceeded", "", ("contextwindowexceeded", "contextwindowexceedederror"), (), None),
    ("context_length_exceeded", "", ("prompt", "input"), ("prompt is too long", "input is too long"), None),
    ("context_length_exceeded", "", ("exceeds", "reduce", "cannot"),
     ("exceeds the maximum number of tokens", "reduce the length of the messages",
      "total number of tokens in the prompt cannot exceed"), None),
    ("rate_limit", "quota", ("quota", "billing"),
     ("insufficient_quota", "exceeded your current quota", "check your plan and billing"), None),
    ("rate_limit", "", ("rate", "ratelimit", "ratelimited", "ratelimiterror"),
     ("rate limit", "rate_limit", "rate-limit", "ratelimit"), None),
    ("rate_limit", "", ("requests", "exhausted", "quota", "tokens"),
     ("too many requests", "requests per min", "resource_exhausted", "resource exhausted",
      "resource has been exhausted", "quota exceeded", "tokens per min"), None),
    ("rate_limit", "", ("throttling", "throttled", "throttle", "throttlingexception"), (), None),
    ("invalid_request", "model_not_found", ("found", "exist", "deploymentnotfound"),
     ("model_not_found", "does not exist or you do not have access", "deploymentnotfound",
      "deployment for this resource does not exist"), None),
    ("authentication", "", ("key",),
     ("invalid_api_key", "incorrect api key", "invalid api key", "invalid api_key", "invalid api-key",
      "invalid x-api-key", "invalid apikey", "api key not valid", "api_key_invalid", "api key is missing",
      "didn't provide an api key", "api_key client option must be set"), None),
    ("authentication", "", ("authentication", "authenticationerror"),
     ("authentication_error", "authentication failed", "authenticationfailed", "invalid authentication",
      "authenticationerror"), None),
    ("authentication", "", ("unauthorized", "unauthenticated", "accessdenied", "accessdeniedexception",
                            "expiredtoken", "expiredtokenexception"), (), None),
    ("authentication", "", ("permission", "denied", "authorized", "token", "credentials"),
     ("permission_error", "permission_denied", "does not have permission", "access denied",
      "not authorized", "invalid token", "invalid bearer token", "invalid access token", "token expired",
      "token is expired", "token has expired", "security token included in the", "invalid credentials"),
     None),
    ("iteration_limit", "", ("recursion", "graphrecursionerror", "maxturnsexceeded", "iteration"),
     ("recursion limit of", "graphrecursionerror", "maxturnsexceeded", "iteration limit"), None),
    ("iteration_limit", "", ("iterations", "turns", "steps"), ("max",),
     r"max(?:imum)?[ _](?:number of )?(?:iterations|turns|steps)\b|reached max steps"),
    ("retrieval_failure", "index_missing", ("index",), ("index_not_found", "no such index"), None),
    ("retrieval_failure", "index_missing", ("index", "collection", "namespace"), ("not found", "exist"),
     r"(?:index|collection|namespace)\b[^.\n]{0,80}(?:not found|does(?:n't|n\\'t| not) exist)"),
    ("retrieval_failure", "dimension_mismatch", ("dimensions",), ("expected ",), r"expected \d+ dimensions"),
    ("retrieval_failure", "dimension_mismatch", ("dimension", "dimensionality"),
     ("dimension mismatch", "does not match the dimension", "dimensionality"), None),
    ("retrieval_failure", "dimension_mismatch", ("dimension",), ("dimension ",),
     r"dimension \d+ does not match"),
    ("retrieval_failure", "empty_results", ("documents", "results", "matches", "chunks", "passages", "hits"),
     ("no ",),
     r"no (?:relevant )?(?:documents|results|matches|chunks|passages|hits)(?: were)? (?:found|ret)"),
    ("retrieval_failure", "empty_results", ("documents", "results", "matches", "chunks", "hits"),
     ("returned ",), r"returned (?:0|no|zero) (?:documents|results|matches|chunks|hits)"),
    ("retrieval_failure", "empty_results", ("empty",), ("empty retrieval res", "empty search res"), None),
    ("tool_schema_mismatch", "missing_required", ("required", "missing"),
     ("is a required property", "field required", "missing required", "required field missing",
      "required field is missing", "required property missing", "required parameter missing",
      "required parameter is missing", "[type=missing", "value_error.missing", "missing field ",
      "missing property ", "missing parameter "), None),
    ("tool_schema_mismatch", "missing_required", ("required",), ("missing ",),
     r"missing \d+ required (?:positional |keyword-only )?arg"),
    ("tool_schema_mismatch", "unexpected_argument", ("unexpected", "additional", "extra"),
     ("unexpected keyword argument", "additional properties are not allowed",
      "extra inputs are not permitted", "extra_forbidden"), None),
    ("tool_schema_mismatch", "schema_definition", ("schema", "parameters"),
     ("invalid schema for function", "invalid schema for tool", "schema is invalid",
      "invalid_function_parameters"), None),
    ("tool_schema_mismatch", "invalid_json", ("jsondecodeerror",), (), None),
    ("tool_schema_mismatch", "invalid_json",
     ("expecting", "unterminated", "extra", "control", "escape", "json", "eof", "parse", "failed"),
     ("expecting value", "expecting property name", "expecting ',' delimiter", "expecting ':' delimiter",
      "unterminated string", "extra data: line", "invalid control character", "invalid \\escape",
      "json_invalid", "invalid json", "not valid json", "eof while parsing", "failed to parse arguments",
      "failed to parse tool arguments", "tool_use_failed"), None),
    ("tool_schema_mismatch", "unparseable_output", ("parse", "outputparserexception", "format"),
     ("could not parse llm output", "could not parse model output", "outputparserexception",
      "invalid format: missing"), None),
    ("tool_schema_mismatch", "invalid_value",
     ("type", "input", "validation", "validating", "one", "schemas", "minimum", "maximum", "long", "short",
      "arguments"),
     ("is not of type", "input should be", "validation error for", "validation errors for",
      "failed validating", "is not one of [", "is not valid under any of the given schemas",
      "is less than the minimum", "is greater than the maximum", "is too long", "is too short",
      "invalid tool arguments", "invalid tool call arguments"), None),
    ("upstream_error", "overloaded", ("overloaded",), (), None),
    ("upstream_error", "", ("server", "internal", "gateway", "api", "upstream"),
     ("server_error", "internal server error", "the server had an error", "internal error", "bad gateway",
      "'api_error'", '"api_error"', "upstream connect error"), None),
    ("upstream_error", "", ("unavailable", "serviceunavailable", "serviceunavailableexception"), (), None),
    ("invalid_request", "",
     ("invalid", "unsupported", "unrecognized", "validationexception", "found", "supported", "preceeding",
      "preceding"),
     ("invalid_request_error", "invalid parameter", "invalid value for", "invalid_argument",
      "unsupported parameter", "unsupported_parameter", "unrecognized request argument",
      "validationexception", "not_found_error", "is not supported with this model",
      "must be a response to a preceeding message", "must be a response to a preceding message"), None),
)

# Generic phrases: only when no specific phrase, exception type or HTTP status decided.
_WEAK_RULES: tuple[_Rule, ...] = (
    (_TIMEOUT, "statement", ("statement",), ("statement timeout",), None),
    (_TIMEOUT, "connect", ("connect", "connection"),
     ("connect timeout", "connection timeout", "connection timed out", "connect timed out"), None),
    (_TIMEOUT, "", ("timed", "timeout", "time", "deadline", "took", "timedout"),
     ("timed out", "time out", "timeout", "time-out", "timedout", "deadline exceeded", "deadline_exceeded",
      "took too long"), None),
    ("upstream_error", "connection",
     ("connection", "connect", "resolution", "known", "disconnected", "closed", "route", "unreachable",
      "pipe", "certificate", "ssl", "getaddrinfo", "nodename"),
     ("connection refused", "connection reset", "connection aborted", "connection error",
      "connection closed", "could not connect", "failed to establish a new connection",
      "cannot connect to host", "name or service not known", "temporary failure in name resolution",
      "nodename nor servname", "getaddrinfo failed", "server disconnected", "remote end closed",
      "connection to server at", "no route to host", "network is unreachable", "broken pipe",
      "certificate verify failed", "ssl: "), None),
)

# fmt: on
_RULES = tuple(
    (family, sub, needles, re.compile(pattern) if pattern is not None else None)
    for family, sub, _, needles, pattern in _STRONG_RULES + _WEAK_RULES
)
_FIRST_WEAK = len(_STRONG_RULES)


def _anchor_index() -> dict[bytes, tuple[int, ...]]:
    index: dict[bytes, list[int]] = {}
    for position, (_, _, anchors, _, _) in enumerate(_STRONG_RULES + _WEAK_RULES):
        for anchor in anchors:
            index.setdefault(anchor.encode(), []).append(position)
    return {word: tuple(positions) for word, positions in index.items()}


def _rule_matches(position: int, text: str) -> bool:
    _, _, needles, pattern = _RULES[position]
    if needles:
        for needle in needles:
            if needle in text:
                break
        else:
            return False
    return pattern is None or pattern.search(text) is not None


_ANCHORS = _anchor_index()
_ANCHOR_WORDS = frozenset(_ANCHORS)
# ASCII punctuation and digits become spaces, so bytes.split() yields the letter words.
_TO_WORDS = bytes(32 if (c < 128 and not chr(c).isalpha()) else c for c in range(256))

# Exception class names (the last dotted component) that settle the family on their own.
_STRONG_TYPES: dict[str, tuple[str, str]] = {
    "RateLimitError": ("rate_limit", ""),
    "ThrottlingException": ("rate_limit", ""),
    "TooManyRequests": ("rate_limit", ""),
    "ResourceExhausted": ("rate_limit", ""),
    "ContextWindowExceededError": ("context_length_exceeded", ""),
    "ContentPolicyViolationError": ("policy_violation", "content_filter"),
    "ContentFilterError": ("policy_violation", "content_filter"),
    "BlockedPromptException": ("policy_violation", "content_filter"),
    "InputGuardrailTripwireTriggered": ("policy_violation", "guardrail"),
    "OutputGuardrailTripwireTriggered": ("policy_violation", "guardrail"),
    "GuardrailViolation": ("policy_violation", "guardrail"),
    "GuardrailTripped": ("policy_violation", "guardrail"),
    "PolicyViolation": ("policy_violation", "tool_policy"),
    "PolicyViolationError": ("policy_violation", "tool_policy"),
    "AuthenticationError": ("authentication", ""),
    "PermissionDeniedError": ("authentication", ""),
    "UnauthorizedException": ("authentication", ""),
    "ForbiddenException": ("authentication", ""),
    "Unauthenticated": ("authentication", ""),
    "ValidationError": ("tool_schema_mismatch", "invalid_value"),
    "JSONDecodeError": ("tool_schema_mismatch", "invalid_json"),
    "OutputParserException": ("tool_schema_mismatch", "unparseable_output"),
    "ModelBehaviorError": ("tool_schema_mismatch", "invalid_value"),
    "ReadTimeout": (_TIMEOUT, ""),
    "WriteTimeout": (_TIMEOUT, ""),
    "PoolTimeout": (_TIMEOUT, ""),
    "ReadTimeoutError": (_TIMEOUT, ""),
    "ConnectTimeout": (_TIMEOUT, "connect"),
    "ConnectTimeoutError": (_TIMEOUT, "connect"),
    "ConnectionTimeout": (_TIMEOUT, ""),
    "TimeoutException": (_TIMEOUT, ""),
    "TimeoutError": (_TIMEOUT, ""),
    "Timeout": (_TIMEOUT, ""),
    "APITimeoutError": (_TIMEOUT, ""),
    "TimeoutExpired": (_TIMEOUT, ""),
    "DeadlineExceeded": (_TIMEOUT, ""),
    "ServerTimeoutError": (_TIMEOUT, ""),
    "QueryCanceled": (_TIMEOUT, "statement"),
    "InternalServerError": ("upstream_error", ""),
    "ServiceUnavailableError": ("upstream_error", ""),
    "ServiceUnavailable": ("upstream_error", ""),
    "ServiceUnavailableException": ("upstream_error", ""),
    "OverloadedError": ("upstream_error", "overloaded"),
    "BadGatewayError": ("upstream_error", ""),
    "APIConnectionError": ("upstream_error", "connection"),
    "ConnectError": ("upstream_error", "connection"),
    "ConnectionRefusedError": ("upstream_error", "connection"),
    "ConnectionResetError": ("upstream_error", "connection"),
    "RemoteDisconnected": ("upstream_error", "connection"),
    "RemoteProtocolError": ("upstream_error", "connection"),
    "ServerDisconnectedError": ("upstream_error", "connection"),
    "ClientConnectorError": ("upstream_error", "connection"),
    "SSLError": ("upstream_error", "connection"),
    "GraphRecursionError": ("iteration_limit", ""),
    "MaxTurnsExceeded": ("iteration_limit", ""),
    "AgentMaxIterationsError": ("iteration_limit", ""),
    "BadRequestError": ("invalid_request", ""),
    "NotFoundError": ("invalid_request", ""),
    "UnprocessableEntityError": ("invalid_request", ""),
    "ToolException": ("tool_execution_error", ""),
}
# The same names when they only appear inside the message ("... raise ReadTimeoutError(...)").
_TYPE_WORDS = {name.lower().encode(): hit for name, hit in _STRONG_TYPES.items()}
_TYPE_WORD_SET = frozenset(_TYPE_WORDS)
_TYPE_PRIORITY = {word: rank for rank, word in enumerate(_TYPE_WORDS)}  # several named: first listed wins

# HTTP status codes written in the message ("Error code: 429", "503 Server Error", "(404)" ...).
_STATUS_RE = re.compile(
    r"(?:error code|status(?:[ _]code)?|http(?:/\d(?:\.\d)?)?|response|api error)[\s:=(]{1,3}([45]\d\d)\b"
    r"|\b([45]\d\d) (?:client error|server error|too many requests|unauthorized|forbidden|not found"
    r"|bad request|internal server error|bad gateway|service unavailable|gateway time-?out"
    r"|request time-?out|payload too large|request entity too large|unprocessable|conflict"
    r"|method not allowed|deadline exceeded|quota)"
    r"|\(([45]\d\d)\)|^([45]\d\d)\b",
    re.MULTILINE,
)


# Cheap test before the status regex: it needs a 4xx/5xx number somewhere (digit-first: fast scan).
_STATUS_PROBE_RE = re.compile(r"[45]\d\d")


def _status(text: str) -> int | None:
    if _STATUS_PROBE_RE.search(text) is None:
        return None
    found = _STATUS_RE.search(text)
    return None if found is None else int(next(group for group in found.groups() if group))


def _status_family(status: int) -> tuple[str, str]:
    if status == 429:
        return ("rate_limit", "")
    if status in (401, 403, 407):
        return ("authentication", "")
    if status in (408, 504, 524):
        return (_TIMEOUT, "")
    if status == 529:
        return ("upstream_error", "overloaded")
    if status >= 500:
        return ("upstream_error", "")
    return ("invalid_request", "model_not_found" if status == 404 else "")


_WEAK_TYPES: dict[str, tuple[str, str]] = {
    "ConnectionError": ("upstream_error", "connection"),
    "ClientConnectionError": ("upstream_error", "connection"),
    "OperationalError": ("upstream_error", "connection"),
    "HTTPError": ("upstream_error", ""),
}

# Built-in exceptions that mean the tool's own code failed. Only for tool steps (and runs that name
# a tool): a KeyError in an llm step says nothing about which class it is, so it stays unknown.
# fmt: off
_PROGRAM_ERRORS = frozenset({
    "KeyError", "IndexError", "AttributeError", "TypeError", "ValueError", "ZeroDivisionError",
    "NameError", "FileNotFoundError", "IsADirectoryError", "NotADirectoryError", "PermissionError",
    "NotImplementedError", "AssertionError", "RecursionError", "UnicodeDecodeError",
    "UnicodeEncodeError", "OverflowError", "LookupError", "ImportError", "ModuleNotFoundError",
    "CalledProcessError", "OSError", "RuntimeError", "MemoryError",
})
# fmt: on
_PROGRAM_ERROR_WORDS = frozenset(name.lower().encode() for name in _PROGRAM_ERRORS)
_EXIT_STATUS_RE = re.compile(r"non-zero exit status|exit (?:code|status) -?\d|oomkilled")

# --------------------------------------------------------------------------------------------------
# Normalization.

# fmt: off
_TRACEBACK_NOISE = frozenset({
    "traceback (most recent call last):",
    "during handling of the above exception, another exception occurred:",
    "the above exception was the direct cause of the following exception:",
})
# fmt: on
_FRAME_RE = re.compile(r'\s*File "[^"\n]*", line \d+')
_STACK_NOISE_RE = re.compile(r"\s+at [\w$.<(/\\]|\s*\.\.\. \d+ more|\s*\[Previous line repeated|[\s^~]+$")

# Patterns start with a literal character where possible: the regex engine then skips ahead to it
# instead of trying every position, which is most of the cost on long provider messages.
_JSON_OPEN_RE = re.compile(r"\{|\[(?<![\w\]).]\[)(?=\s*(?:[\[{\"'\d\]-]|true\b|false\b|null\b))")
_BRACKET_RE = re.compile(r"[\[\]{}]")
_CLOSER = {"{": "}", "[": "]"}
_KEY_COLON_RE = re.compile(r"""['"]\s*:\s*(['"])""")  # the end of a key and the opening quote of its value
_MESSAGE_KEYS = ("message", "detail", "error", "reason")  # where providers put the human text
_CODE_KEYS = ("code", "status", "type")  # the machine-readable reason, most specific first
# '...' only when the quote opens a value (not "model's"), "...", `...`, and typographic quotes.
_QUOTED_RE = re.compile(
    r"""'(?<!\w')[^'\n]*'(?!\w)|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|`[^`\n]*`|‘[^’\n]*’|“[^”\n]*”"""
)
_QUOTE_CHARS = ("'", '"', "`", "‘", "“")

# Applied to one whitespace-separated token at a time, and only to tokens that are neither plain
# words nor plain numbers. Which patterns run depends on the characters the token holds (a host
# needs a dot, a path a slash); alternatives are tried left to right at each position.
_URL_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>()\[\]{}]*[^\s'\"<>()\[\]{},.;:!?]", re.IGNORECASE)
_EMAIL_RE = re.compile(r"[\w.+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.IGNORECASE)
_DIGIT_RE = re.compile(r"\d")
_HOST = (
    r"(?P<host>(?<![\w.@-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:com|net|org|io|ai|dev|cloud"
    r"|co|us|eu|uk|de|internal|local|localhost|svc)(?![\w-]|\.[a-z0-9])|\blocalhost\b)"
)
_PATH = r"(?P<path>(?<![\w<>/.:~-])(?:~|\.{1,2})?(?:/[\w.@%+=~-]+)+/?(?:\?\S*)?|\b[a-z]:\\\S*)"
_NUMERIC = (
    r"(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"|(?P<ts>\d{4}-\d\d-\d\d(?:t\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:z|[+-]\d\d:?\d\d)?)?"
    r"|\d\d:\d\d:\d\d(?:\.\d+)?)"
    r"|(?P<ip>(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?!\w|\.\d))",
    r"(?P<dur>(?<![\w.])\d+(?:\.\d+)?(?:milliseconds?|seconds?|secs?|minutes?|mins?|hours?|hrs?"
    r"|ms|us|µs|ns|s|m|h)(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|s|m|h))*(?!\w))"
    r"|(?P<hex>\b0x[0-9a-f]+\b|(?<![a-z0-9])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}(?![a-z0-9]))"
    r"|(?P<id>(?<![a-z0-9])(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{8,}(?![a-z0-9]))"
    r"|(?P<n>(?<!\w)-?\d++(?:[.,]\d++)*+(?:e[-+]?\d++)?(?!\w))",
)


def _token_re(digits: bool, dot: bool, slash: bool) -> re.Pattern[str] | None:
    parts = [_NUMERIC[0]] if digits else []
    parts += [_HOST] if dot else []
    parts += [_PATH] if slash else []
    parts += [_NUMERIC[1]] if digits else []
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


_TOKEN_RES = {
    (digits, dot, slash): _token_re(digits, dot, slash)
    for digits in (False, True)
    for dot in (False, True)
    for slash in (False, True)
}
# Numbers (one decimal point at most: more is a version or an IP) and durations, and the plain
# keys of key=value tokens.
_SIMPLE_VALUE_RE = re.compile(
    r"(-?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?)"
    r"|(\d+(?:\.\d+)?(?:milliseconds?|seconds?|secs?|minutes?|mins?|hours?|hrs?|ms|us|µs|ns|s|m|h)"
    r"(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|s|m|h))*)",
    re.IGNORECASE,
)
_PLAIN_KEY_RE = re.compile(r"[A-Za-z_-]+")
_PREFIXED_ID_RE = re.compile(r"[A-Za-z]+[_-]([A-Za-z0-9]{8,})")
_HEX_RUN_RE = re.compile(r"[0-9a-fA-F]+")
_TOKEN_EDGES = "()[]{}<>,.;:!?\"'`|"
_SPACED_DURATION_RE = re.compile(
    r"<n> (?:milliseconds?|seconds?|secs?|minutes?|mins?|hours?|hrs?|ms)\b", re.IGNORECASE
)
# Memo of normalized tokens: words and constant tokens ("gpt-4o", "host=<str>,") recur across
# messages. The output never depends on it; bounded, cleared when full.
_TOKEN_MEMO: dict[str, str] = {}
_TOKEN_MEMO_MAX = 16384
_CONNECTION_POOL_PREFIX_RE = re.compile(r"^\w*ConnectionPool\(host=<str>, port=<n>\): ")


def _placeholder(match: re.Match[str]) -> str:
    return f"<{match.lastgroup}>"


def _normalize_token(token: str) -> str:
    core = token.strip(_TOKEN_EDGES)
    if not core or core.isalpha():
        normalized = token
    elif core.isdigit() and core.isascii():
        start = token.index(core)
        normalized = f"{token[:start]}<n>{token[start + len(core) :]}"
    else:
        # A number or duration, alone or as the value of key=..., is the usual unseen token: settle
        # it without the token regexes (same result, a test holds the two paths equal).
        key, equals, value = core.rpartition("=")
        simple = _SIMPLE_VALUE_RE.fullmatch(value) if not key or _PLAIN_KEY_RE.fullmatch(key) else None
        start = token.index(core) + len(core) - len(value)
        if simple is not None and (simple.lastindex == 1 or token[start - 1 : start] != "."):
            placeholder = "<n>" if simple.lastindex == 1 else "<dur>"  # ".5s" is left to the patterns
            normalized = f"{token[:start]}{placeholder}{token[start + len(value) :]}"
        else:
            normalized = _normalize_prefixed_id(token, core) or _normalize_token_by_patterns(token)
    if len(_TOKEN_MEMO) >= _TOKEN_MEMO_MAX:
        _TOKEN_MEMO.clear()
    _TOKEN_MEMO[token] = normalized
    return normalized


def _normalize_prefixed_id(token: str, core: str) -> str | None:
    """req_0a1b2c3d4e5f, org-4Ft8xQbWbGvVzP9NkLm2sR7h, call_8Wq2x3Yb...: the prefix stays."""
    found = _PREFIXED_ID_RE.fullmatch(core)
    if found is None:
        return None
    tail = found.group(1)
    if tail.isalpha() or tail.isdigit() or _SIMPLE_VALUE_RE.fullmatch(tail) is not None:
        return None
    start = token.index(core) + len(core) - len(tail)
    placeholder = "<hex>" if _HEX_RUN_RE.fullmatch(tail) is not None else "<id>"
    return f"{token[:start]}{placeholder}{token[start + len(tail) :]}"


def _normalize_token_by_patterns(token: str) -> str:
    if "***" in token:
        return "<redacted>"
    if "://" in token:
        token = _URL_RE.sub("<url>", token)
    if "@" in token:
        token = _EMAIL_RE.sub("<email>", token)
    pattern = _TOKEN_RES[_DIGIT_RE.search(token) is not None, "." in token, "/" in token or "\\" in token]
    return token if pattern is None else pattern.sub(_placeholder, token)


def _meaningful_lines(message: str) -> list[str]:
    """Lines that say what went wrong: traceback frames, source excerpts and blank lines dropped."""
    if "\n" not in message and "\r" not in message:
        stripped = message.strip()
        return [stripped] if stripped else []
    lines: list[str] = []
    in_frame = False
    for line in message.splitlines():
        stripped = line.strip()
        if not stripped:
            in_frame = False
            continue
        if _FRAME_RE.match(line):
            in_frame = True
            continue
        if in_frame and (line.startswith("    ") or line.startswith("\t")):
            continue  # the source line (and ^^^^ markers) under a frame
        in_frame = False
        if stripped.lower() in _TRACEBACK_NOISE or _STACK_NOISE_RE.match(line):
            continue
        lines.append(stripped)
    return lines


def _unescape(text: str) -> str:
    return text.replace("\\'", "'").replace('\\"', '"').replace("\\n", " ")


def _json_value(fragment: str, key: str, *, word: bool) -> str | None:
    """The first quoted value of ``key`` in a JSON/dict fragment ('word': only identifier-like values)."""
    for quote in ("'", '"'):
        needle = quote + key
        at = fragment.find(needle)
        while at >= 0:
            found = _KEY_COLON_RE.match(fragment, at + len(needle))
            if found is not None:
                opening = found.group(1)
                begin = close = found.end()
                while True:  # str.find beats a regex scan over long provider messages
                    close = fragment.find(opening, close)
                    if close < 0 or fragment[close - 1] != "\\":
                        break
                    close += 1
                value = fragment[begin:] if close < 0 else fragment[begin:close]
                if not word:
                    return value
                if value.isidentifier() and value not in ("error", "None", "null"):
                    return value
            at = fragment.find(needle, at + 1)
    return None


def _fragment_end(text: str, start: int) -> int:
    """End of the bracketed literal opening at ``start``; an unbalanced one ends with its line.

    A literal that runs to the end of its line with balanced brackets (a provider's error body) is
    taken whole without walking it.
    """
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    rest = text[start:line_end].rstrip()
    if rest[-1] in "]}" and rest.count("{") == rest.count("}") and rest.count("[") == rest.count("]"):
        return start + len(rest)
    closers: list[str] = []
    for bracket in _BRACKET_RE.finditer(text, start):
        char = bracket.group()
        if char in _CLOSER:
            closers.append(_CLOSER[char])
        elif closers and char == closers[-1]:
            closers.pop()
            if not closers:
                return bracket.end()
        else:
            break  # mismatched: not a literal after all, or a truncated one
    return line_end


def _replace_json(text: str) -> str:
    """Replace JSON/dict literals by <json>, or by the provider's error message and code inside them.

    Provider bodies ("Error code: 429 - {'error': {'message': ..., 'code': ...}}") carry the only
    useful words of the error inside the body: keep those, drop the rest.
    """
    out: list[str] = []
    pos = 0
    while True:
        opener = _JSON_OPEN_RE.search(text, pos)
        if opener is None:
            break
        start = opener.start()
        end = _fragment_end(text, start)
        fragment = text[start:end]
        out.append(text[pos:start])
        inner = None
        for key in _MESSAGE_KEYS:
            inner = _json_value(fragment, key, word=False)
            if inner is not None:
                break
        if inner is None:
            out.append("<json>")
        else:
            code = next(filter(None, (_json_value(fragment, key, word=True) for key in _CODE_KEYS)), None)
            inner = _unescape(inner)
            out.append(f"{inner} [{code}]" if code else inner)
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _normalize_lines(lines: list[str]) -> str:
    text = "\n".join(lines)
    if "{" in text or "[" in text:
        text = _replace_json(text)
    if "\n" in text:
        text = " | ".join([line for line in text.split("\n") if line.strip()][:_TEMPLATE_LINES])
    if any(quote in text for quote in _QUOTE_CHARS):
        text = _QUOTED_RE.sub("<str>", text)
    # Every output token takes at least two characters with its space, so tokens past this many
    # cannot reach the truncated template.
    memo = _TOKEN_MEMO.get
    text = " ".join([memo(token) or _normalize_token(token) for token in text.split()[:_TEMPLATE_TOKENS]])
    if "<n> " in text:
        text = _SPACED_DURATION_RE.sub("<dur>", text)  # "2.5 seconds"
    return _truncate(text, _TEMPLATE_MAX_CHARS)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit // 2, limit)
    return text[: cut if cut > 0 else limit].rstrip(" |,;:") + "…"


def normalize_message(message: str) -> str:
    """The message template: variable parts replaced by placeholders, first meaningful lines only.

    >>> normalize_message("Expecting ',' delimiter: line 1 column 45 (char 44)")
    'Expecting <str> delimiter: line <n> column <n> (char <n>)'
    """
    return _normalize_lines(_meaningful_lines(_as_text(message)[:_MAX_SCAN_CHARS]))


# --------------------------------------------------------------------------------------------------
# Classification.


def _as_text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _match(
    kind: str, short_type: str, text: str, words: list[bytes], has_tool: bool
) -> tuple[str, str] | None:
    hits = _ANCHOR_WORDS.intersection(words)
    candidates = sorted({position for word in hits for position in _ANCHORS[word]}) if hits else []
    for position in candidates:
        if position >= _FIRST_WEAK:
            break
        if _rule_matches(position, text):
            return _RULES[position][0], _RULES[position][1]
    hit = _STRONG_TYPES.get(short_type)
    if hit is not None:
        return hit
    mentioned = _TYPE_WORD_SET.intersection(words)
    if mentioned:
        return _TYPE_WORDS[min(mentioned, key=_TYPE_PRIORITY.__getitem__)]
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
        if short_type in _PROGRAM_ERRORS or _PROGRAM_ERROR_WORDS.intersection(words):
            return "tool_execution_error", ""
    return None


_INFRA_FAMILIES = frozenset({_TIMEOUT, "upstream_error", "rate_limit", "authentication"})


def _resolve(kind: str, is_api_timeout: bool, matched: tuple[str, str] | None) -> tuple[str, str]:
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
        family = "llm_timeout" if kind == "llm" or is_api_timeout else "tool_timeout"
    if not family:
        return "unknown", "unknown"
    return family, f"{family}/{sub}" if sub else family


def _explicit_class(error_class: object) -> str | None:
    name = _as_text(error_class).strip().lower().replace("-", "_").replace(" ", "_")
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
    kind_s = (kind if type(kind) is str else _as_text(kind)).strip().lower()
    type_s = (error_type if type(error_type) is str else _as_text(error_type)).strip()
    tool_s = (tool if type(tool) is str else _as_text(tool)).strip() or None
    model_s = (model if type(model) is str else _as_text(model)).strip() or None
    message = error_message if type(error_message) is str else _as_text(error_message)
    lines = _meaningful_lines(message[:_MAX_SCAN_CHARS] if len(message) > _MAX_SCAN_CHARS else message)

    text = (f"{type_s}\n" + "\n".join(lines) if type_s else "\n".join(lines)).lower()
    words = text.encode("utf-8", "ignore").translate(_TO_WORDS).split()
    matched = _match(kind_s, type_s.rsplit(".", 1)[-1], text, words, tool_s is not None)
    failure_class, hint_key = _resolve(kind_s, "apitimeouterror" in text, matched)
    if error_class is not None:
        explicit = _explicit_class(error_class)
        if explicit is not None and explicit != failure_class:
            failure_class, hint_key = explicit, explicit

    template = _normalize_lines(lines) if lines else ""
    if not template:
        template = _normalize_lines([type_s]) if type_s else "<empty>"
    subject = tool_s if kind_s == "tool" else model_s if kind_s == "llm" else tool_s or model_s
    digest = hashlib.sha256(
        f"{ALGORITHM_VERSION}\x1f{failure_class}\x1f{template}\x1f{subject or ''}".encode()
    ).hexdigest()
    short = _CONNECTION_POOL_PREFIX_RE.sub("", template) if "ConnectionPool(" in template else template
    short = _truncate(short, _LABEL_TEMPLATE_MAX_CHARS)
    label = f"{failure_class} · {subject} · {short}" if subject else f"{failure_class} · {short}"
    return Failure(
        failure_class=failure_class,
        cluster_id=digest[:16],
        template=template,
        subject=subject,
        label=label,
        hint=_HINTS.get(hint_key) or _HINTS[failure_class],
    )


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
