"""The failure taxonomy: its classes, versions, the :class:`Failure` record and the remediation hints.

Pure data. The classes, what each means and when to bump the versions are in ``docs/triage.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALGORITHM_VERSION", "FAILURE_CLASSES", "TAXONOMY_VERSION", "Failure", "HINTS"]

# Bump when normalization or classification changes what a failure maps to: it is part of every
# cluster id, so a bump regroups everything at once instead of silently splitting old clusters.
ALGORITHM_VERSION = "2"
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



@dataclass(frozen=True, slots=True)
class Failure:
    """One classified failure: its class, its cluster and what to do about it."""

    failure_class: str
    cluster_id: str  # 16 hex chars of sha256(ALGORITHM_VERSION, class, template, subject)
    template: str  # normalized message template
    subject: str | None  # the tool for tool steps, the model for llm steps
    label: str  # "<class> · <subject> · <short template>"
    hint: str  # remediation hint for the class or the known sub-pattern


# The frozen dataclass's __init__ sets each field through object.__setattr__, which costs as much
# as a tenth of a cold classification. Classification builds its records through the slots'
# descriptors instead: the same object (a test holds it equal to Failure(...)), about half the cost.
_NEW = object.__new__
_SET_CLASS, _SET_CLUSTER, _SET_TEMPLATE, _SET_SUBJECT, _SET_LABEL, _SET_HINT = (
    Failure.__dict__[name].__set__
    for name in ("failure_class", "cluster_id", "template", "subject", "label", "hint")
)


def make_failure(
    failure_class: str, cluster_id: str, template: str, subject: str | None, label: str, hint: str
) -> Failure:
    """``Failure(failure_class, cluster_id, template, subject, label, hint)``, built faster."""
    failure: Failure = _NEW(Failure)
    _SET_CLASS(failure, failure_class)
    _SET_CLUSTER(failure, cluster_id)
    _SET_TEMPLATE(failure, template)
    _SET_SUBJECT(failure, subject)
    _SET_LABEL(failure, label)
    _SET_HINT(failure, hint)
    return failure



# --------------------------------------------------------------------------------------------------
# Hints, keyed "class" or "class/sub-pattern".

HINTS: dict[str, str] = {
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

