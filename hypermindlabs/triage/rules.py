"""Classification rules: phrases, exception type names and HTTP statuses → (family, sub-pattern).

Data and the cheap matching machinery over it (anchor words, needles); the decision order lives
in :mod:`hypermindlabs.triage.classify`.
"""

from __future__ import annotations

import re

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
# Every word any decision looks for: the text's words are intersected with it once.
_WORD_SET = _ANCHOR_WORDS | _TYPE_WORD_SET | _PROGRAM_ERROR_WORDS
_EXIT_STATUS_RE = re.compile(r"non-zero exit status|exit (?:code|status) -?\d|oomkilled")

