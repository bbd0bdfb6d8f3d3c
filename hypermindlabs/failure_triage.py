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
# Classification rules. Families are classes, plus "timeout" (resolved to tool_timeout/llm_timeout
# by the step kind). Order matters: the first match wins.

_TIMEOUT = "timeout"

_Rule = tuple[str, str, re.Pattern[str]]  # (family, sub-pattern, pattern on the lower-cased text)


def _rules(*specs: tuple[str, str, str]) -> tuple[_Rule, ...]:
    return tuple((family, sub, re.compile(pattern)) for family, sub, pattern in specs)


# Specific phrases and provider error codes: trusted over the exception type and the HTTP status.
_STRONG_RULES = _rules(
    ("policy_violation", "content_filter",
     r"content[_ ]filter|content management policy|responsibleaipolicyviolation|content_?policy"
     r"|flagged as potentially violating|invalid_prompt|(?:block|finish)_reason\W+safety"
     r"|blocked (?:due to|because of|by) (?:the )?safety"),
    ("policy_violation", "guardrail",
     r"guardrail|tripwire|prompt injection|jailbreak|\bpii\b|toxic|stop_reason\W+refusal"),
    ("policy_violation", "tool_policy",
     r"(?:denied|blocked|disallowed|forbidden|rejected|not (?:allowed|permitted)) (?:by|per|under) "
     r"(?:the |a )?(?:[\w'-]+ )?polic|allow-?list|block-?list|deny-?list|policy violation"
     r"|violates (?:the |our )?(?:[\w-]+ )?polic"),
    ("context_length_exceeded", "",
     r"context_length_exceeded|maximum context length|context length (?:exceeded|of)|context window"
     r"|exceeds the context|prompt is too long|input is too long|exceeds the maximum number of tokens"
     r"|reduce the length of the messages|total number of tokens in the prompt cannot exceed"
     r"|contextwindowexceeded"),
    ("rate_limit", "quota",
     r"insufficient_quota|exceeded your current quota|check your plan and billing"),
    ("rate_limit", "",
     r"rate[ _-]?limit|too many requests|resource[_ ]exhausted|resource has been exhausted|throttl"
     r"|quota exceeded|requests per min|tokens per min"),
    ("invalid_request", "model_not_found",
     r"model_not_found|does not exist or you do not have access|deploymentnotfound"
     r"|deployment for this resource does not exist"),
    ("authentication", "",
     r"invalid_api_key|incorrect api key|invalid (?:x-)?api[ _-]?key|api key not valid|api_key_invalid"
     r"|authentication_error|authentication ?failed|authenticationerror|unauthorized|unauthenticated"
     r"|permission_error|permission_denied|accessdenied|access denied|not authorized"
     r"|invalid authentication|invalid (?:bearer |access )?token|expiredtoken|token (?:is |has )?expired"
     r"|security token included in the request is|invalid credentials|api key is missing"
     r"|didn't provide an api key|api_key client option must be set|password authentication failed"
     r"|does not have permission"),
    ("iteration_limit", "",
     r"recursion limit of|graphrecursionerror|iteration limit|max(?:imum)? (?:number of )?"
     r"(?:iterations|turns|steps)\b|max_iterations|maxturnsexceeded|reached max steps"),
    ("retrieval_failure", "index_missing",
     r"index_not_found|no such index|(?:index|collection|namespace)\b[^.\n]{0,80}"
     r"(?:not found|does(?:n't|n\\'t| not) exist)"),
    ("retrieval_failure", "dimension_mismatch",
     r"expected \d+ dimensions|dimension \d+ does not match|dimension mismatch|does not match the "
     r"dimension|dimensionality"),
    ("retrieval_failure", "empty_results",
     r"no (?:relevant )?(?:documents|results|matches|chunks|passages|hits)(?: were)? (?:found|returned)"
     r"|returned (?:0|no|zero) (?:documents|results|matches|chunks|hits)|empty (?:retrieval|search) res"),
    ("tool_schema_mismatch", "missing_required",
     r"is a required property|field required|missing \d+ required (?:positional |keyword-only )?arg"
     r"|\[type=missing|value_error\.missing|missing (?:required )?(?:field|property|parameter) "
     r"|missing required|required (?:field|property|parameter) (?:is )?missing"),
    ("tool_schema_mismatch", "unexpected_argument",
     r"unexpected keyword argument|additional properties are not allowed|extra inputs are not permitted"
     r"|extra_forbidden"),
    ("tool_schema_mismatch", "schema_definition",
     r"invalid schema for (?:function|tool)|invalid_function_parameters|schema is invalid"),
    ("tool_schema_mismatch", "invalid_json",
     r"jsondecodeerror|expecting (?:value|property name|',' delimiter|':' delimiter)"
     r"|unterminated string|extra data: line|invalid control character|invalid \\escape|json_invalid"
     r"|invalid json|not valid json|eof while parsing|failed to parse (?:tool )?arguments"
     r"|tool_use_failed"),
    ("tool_schema_mismatch", "unparseable_output",
     r"could not parse (?:llm|model) output|outputparserexception|invalid format: missing"),
    ("tool_schema_mismatch", "invalid_value",
     r"is not of type|input should be|validation errors? for|failed validating|is not one of \["
     r"|is not valid under any of the given schemas|is less than the minimum|is greater than the max"
     r"|is too (?:long|short)|invalid tool (?:call )?arguments"),
    ("upstream_error", "overloaded", r"overloaded"),
    ("upstream_error", "",
     r"server_error|internal server error|internal error|service unavailable|serviceunavailable"
     r"|bad gateway|the server had an error|'api_error'|\"api_error\"|upstream connect error"
     r"|\bunavailable\b"),
    ("invalid_request", "",
     r"invalid_request_error|unsupported parameter|unsupported_parameter|unrecognized request argument"
     r"|invalid parameter|invalid value for|invalid_argument|validationexception|not_found_error"
     r"|is not supported with this model|must be a response to a preceeding message"),
)

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


# Generic phrases: only when nothing more specific matched.
_WEAK_RULES = _rules(
    (_TIMEOUT, "statement", r"statement timeout"),
    (_TIMEOUT, "connect", r"connect(?:ion)? ?time(?:d ?)?out|connect timeout"),
    (_TIMEOUT, "", r"timed? ?out|timeout|deadline[ _]exceeded|took too long"),
    ("upstream_error", "connection",
     r"connection (?:refused|reset|aborted|error|closed)|could not connect|failed to establish a new "
     r"connection|cannot connect to host|name or service not known|temporary failure in name "
     r"resolution|nodename nor servname|getaddrinfo failed|server disconnected|remote end closed"
     r"|connection to server at|no route to host|network is unreachable|broken pipe"
     r"|certificate verify failed|ssl: "),
)
_WEAK_TYPES: dict[str, tuple[str, str]] = {
    "ConnectionError": ("upstream_error", "connection"),
    "ClientConnectionError": ("upstream_error", "connection"),
    "OperationalError": ("upstream_error", "connection"),
    "HTTPError": ("upstream_error", ""),
}

# Built-in exceptions that mean the tool's own code failed. Only for tool steps (and runs that name
# a tool): a KeyError in an llm step says nothing about which class it is, so it stays unknown.
_PROGRAM_ERRORS = frozenset({
    "KeyError", "IndexError", "AttributeError", "TypeError", "ValueError", "ZeroDivisionError",
    "NameError", "FileNotFoundError", "IsADirectoryError", "NotADirectoryError", "PermissionError",
    "NotImplementedError", "AssertionError", "RecursionError", "UnicodeDecodeError",
    "UnicodeEncodeError", "OverflowError", "LookupError", "ImportError", "ModuleNotFoundError",
    "CalledProcessError", "OSError", "RuntimeError", "MemoryError",
})
_EXIT_STATUS_RE = re.compile(r"non-zero exit status|exit (?:code|status) -?\d|oomkilled")

_TYPE_IN_MESSAGE_RE = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*([A-Z]\w*(?:Error|Exception|Timeout|Exceeded|Triggered|Expired))\b",
    re.MULTILINE,
)

# --------------------------------------------------------------------------------------------------
# Normalization.

_TRACEBACK_NOISE = frozenset({
    "traceback (most recent call last):",
    "during handling of the above exception, another exception occurred:",
    "the above exception was the direct cause of the following exception:",
})
_FRAME_RE = re.compile(r'\s*File "[^"\n]*", line \d+')
_STACK_NOISE_RE = re.compile(r"\s+at [\w$.<(/\\]|\s*\.\.\. \d+ more|\s*\[Previous line repeated|[\s^~]+$")

_JSON_OPEN_RE = re.compile(r"\{|(?<![\w\])])\[(?=\s*(?:[\[{\"'\d\]-]|true\b|false\b|null\b))")
_BRACKET_RE = re.compile(r"[\[\]{}\n]")
_PROVIDER_MESSAGE_RE = re.compile(
    r"""['"](?:message|detail|error|reason)['"]\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""
)
_PROVIDER_CODE_RE = re.compile(r"""['"](code|status|type)['"]\s*:\s*['"]([A-Za-z_][\w.-]*)['"]""")

# (pattern, placeholder, cheap precondition on the text) in application order.
_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str, str | None], ...] = tuple(
    (re.compile(pattern, flags), placeholder, needle)
    for pattern, placeholder, needle, flags in (
        (r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>()\[\]{}]*[^\s'\"<>()\[\]{},.;:!?]", "<url>", "://", re.I),
        (r"\S*\*{3,}\S*", "<redacted>", "***", 0),
        (r"(?<!\w)[bru]?'[^'\n]*'(?!\w)|\"(?:[^\"\\\n]|\\.)*\"|`[^`\n]*`|‘[^’\n]*’|“[^”\n]*”",
         "<str>", None, 0),
        (r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", "<email>", "@", 0),
        (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>", "-", re.I),
        (r"\b\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?\b"
         r"|\b\d\d:\d\d:\d\d(?:\.\d+)?\b", "<ts>", None, 0),
        (r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)", "<ip>", ".", 0),
        (r"(?<![\w.@-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:com|net|org|io|ai|dev|cloud|co|us"
         r"|eu|uk|de|internal|local|localhost|svc)(?![\w-]|\.[a-z0-9])|\blocalhost\b", "<host>", None,
         re.I),
        (r"(?<![\w<>/.:~-])(?:~|\.{1,2})?(?:/[\w.@%+=~-]+)+/?(?:\?[^\s'\")\]]*)?"
         r"|\b[A-Za-z]:\\(?:[^\\\s'\"]+\\)*[^\\\s'\"]*", "<path>", None, 0),
        (r"\b0x[0-9a-f]+\b|(?<![a-z0-9])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}(?![a-z0-9])",
         "<hex>", None, re.I),
        (r"(?<![A-Za-z0-9])(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{8,}(?![A-Za-z0-9])", "<id>", None,
         0),
        (r"(?<![\w.])\d+(?:\.\d+)?(?:\s?(?:milliseconds?|seconds?|secs?|minutes?|mins?|hours?|hrs?|ms)\b"
         r"|(?:ms|us|µs|ns|s|m|h)(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|s|m|h))*(?!\w))", "<dur>", None, 0),
        (r"(?<![\w.])-?\d++(?:[.,]\d++)*+(?:e[-+]?\d++)?(?!\w)", "<n>", None, re.I),
    )
)
_WHITESPACE_RE = re.compile(r"\s+")
_CONNECTION_POOL_PREFIX_RE = re.compile(r"^\w*ConnectionPool\(host=<str>, port=<n>\): ")


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
        if in_frame and line[:1] in (" ", "\t") and (line.startswith("    ") or line[:1] == "\t"):
            continue  # the source line (and ^^^^ markers) under a frame
        in_frame = False
        if stripped.lower() in _TRACEBACK_NOISE or _STACK_NOISE_RE.match(line):
            continue
        lines.append(stripped)
    return lines


def _unescape(text: str) -> str:
    return text.replace("\\'", "'").replace('\\"', '"').replace("\\n", " ")


def _replace_json(text: str) -> str:
    """Replace JSON/dict literals by <json>, or by the provider's error message and code inside them.

    Provider bodies ("Error code: 429 - {'error': {'message': ..., 'code': ...}}") carry the only
    useful words of the error in the body: keep those, drop the rest.
    """
    out: list[str] = []
    pos = 0
    while True:
        opener = _JSON_OPEN_RE.search(text, pos)
        if opener is None:
            break
        start = opener.start()
        depth = 0
        end = -1
        for bracket in _BRACKET_RE.finditer(text, start):
            char = bracket.group()
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    end = bracket.end()
                    break
        if end < 0:  # unbalanced: a truncated body; it ends with the text
            end = len(text)
        fragment = text[start:end]
        out.append(text[pos:start])
        found = _PROVIDER_MESSAGE_RE.search(fragment)
        if found is None:
            out.append("<json>")
        else:
            inner = _unescape(found.group(1) if found.group(1) is not None else found.group(2))
            codes = {key: value for key, value in reversed(_PROVIDER_CODE_RE.findall(fragment))
                     if value not in ("error", "None", "null")}
            code = codes.get("code") or codes.get("status") or codes.get("type")
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
    head = [line for line in text.split("\n", _TEMPLATE_LINES * 4) if line.strip()][:_TEMPLATE_LINES]
    text = " | ".join(head)
    for pattern, placeholder, needle in _SUBSTITUTIONS:
        if needle is None or needle in text:
            text = pattern.sub(placeholder, text)
    text = _WHITESPACE_RE.sub(" ", text).strip()
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


def _match(kind: str, short_type: str, text: str, has_tool: bool) -> tuple[str, str] | None:
    for family, sub, pattern in _STRONG_RULES:
        if pattern.search(text):
            return family, sub
    hit = _STRONG_TYPES.get(short_type)
    if hit is not None:
        return hit
    status = _STATUS_RE.search(text)
    if status is not None:
        return _status_family(int(next(group for group in status.groups() if group)))
    for family, sub, pattern in _WEAK_RULES:
        if pattern.search(text):
            return family, sub
    hit = _WEAK_TYPES.get(short_type)
    if hit is not None:
        return hit
    if kind == "tool" or (kind == "run" and has_tool):
        if _EXIT_STATUS_RE.search(text):
            return "tool_execution_error", "exit_status"
        if short_type in _PROGRAM_ERRORS:
            return "tool_execution_error", ""
    return None


_INFRA_FAMILIES = frozenset({_TIMEOUT, "upstream_error", "rate_limit", "authentication"})


def _resolve(kind: str, short_type: str, matched: tuple[str, str] | None) -> tuple[str, str]:
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
        family = "llm_timeout" if kind == "llm" or short_type == "APITimeoutError" else "tool_timeout"
    if not family:
        return "unknown", "unknown"
    return family, f"{family}/{sub}" if sub else family


def _subject(kind: str, tool: str | None, model: str | None) -> str | None:
    if kind == "tool":
        return tool
    if kind == "llm":
        return model
    return tool or model


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
    kind_s = _as_text(kind).strip().lower()
    type_s = _as_text(error_type).strip()
    tool_s = _as_text(tool).strip() or None
    model_s = _as_text(model).strip() or None
    lines = _meaningful_lines(_as_text(error_message)[:_MAX_SCAN_CHARS])
    scan = "\n".join(lines)

    short_type = type_s.rsplit(".", 1)[-1]
    if not short_type:
        found = _TYPE_IN_MESSAGE_RE.search(scan)
        short_type = found.group(1) if found else ""

    text = f"{type_s}\n{scan}".lower()
    matched = _match(kind_s, short_type, text, tool_s is not None)
    failure_class, hint_key = _resolve(kind_s, short_type, matched)
    explicit = _explicit_class(error_class)
    if explicit is not None and explicit != failure_class:
        failure_class, hint_key = explicit, explicit

    template = _normalize_lines(lines) if lines else ""
    if not template:
        template = _normalize_lines([type_s]) if type_s else "<empty>"
    subject = _subject(kind_s, tool_s, model_s)
    digest = hashlib.sha256(
        "\x1f".join((ALGORITHM_VERSION, failure_class, template, subject or "")).encode()
    ).hexdigest()
    short = _truncate(_CONNECTION_POOL_PREFIX_RE.sub("", template), _LABEL_TEMPLATE_MAX_CHARS)
    label = " · ".join(part for part in (failure_class, subject, short) if part)
    return Failure(
        failure_class=failure_class,
        cluster_id=digest[:16],
        template=template,
        subject=subject,
        label=label,
        hint=_HINTS.get(hint_key) or _HINTS[failure_class],
    )


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
