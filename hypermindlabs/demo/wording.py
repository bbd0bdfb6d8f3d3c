"""Error wording, as real libraries and providers word it, for the demo's failing steps.

Numbers, hosts and ids vary on purpose: triage must normalize them into one cluster template.
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random

from hypermindlabs.demo.catalogue import MODELS, TOOLS


def _hex(rng: Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _alnum(rng: Random, n: int) -> str:
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(chars[rng.randrange(62)] for _ in range(n))


def _uuid(rng: Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _openai_rate_limit(rng: Random, model: str, window: int) -> tuple[str, str]:
    if rng.random() < 0.7:
        limit = rng.choice((30000, 200000, 450000, 800000))
        req = 500 + rng.randrange(6000)
        used = limit - rng.randrange(1, req)
        wait = f"{rng.randrange(100, 999)}ms" if rng.random() < 0.4 else f"{rng.uniform(1, 20):.3f}s"
        what = f"tokens per min (TPM): Limit {limit}, Used {used}, Requested {req}"
        kind = "tokens"
    else:
        limit = rng.choice((500, 5000, 10000))
        what, kind, wait = (
            f"requests per min (RPM): Limit {limit}, Used {limit}, Requested 1",
            "requests",
            (f"{rng.randrange(6, 999)}ms"),
        )
    org = rng.choice(("org-Xk2Lq9RbT1mWc8vZ0aEp4HsN", "org-7fJd2KQpLx0aZr5mWn1sTb3C"))
    return "RateLimitError", (
        f"Error code: 429 - {{'error': {{'message': 'Rate limit reached for {model} in organization {org} "
        f"on {what}. Please try again in {wait}. Visit https://platform.openai.com/account/rate-limits "
        f"to learn more.', 'type': '{kind}', 'param': None, 'code': 'rate_limit_exceeded'}}}}"
    )


def _anthropic_rate_limit(rng: Random, model: str, window: int) -> tuple[str, str]:
    return "RateLimitError", (
        "Error code: 429 - {'type': 'error', 'error': {'type': 'rate_limit_error', 'message': 'This "
        f"request would exceed the rate limit for your organization ({_uuid(rng)}) of "
        f"{rng.choice((40000, 80000, 400000))} input tokens per minute. For details, refer to: "
        "https://docs.anthropic.com/en/api/rate-limits. You can see the response headers for current "
        "usage. Please reduce the prompt length or the maximum tokens requested, or try again later. "
        "You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options "
        "for a rate limit increase.'}}"
    )


def _together_rate_limit(rng: Random, model: str, window: int) -> tuple[str, str]:
    return "RateLimitError", (
        f"Error code: 429 - {{'id': '{_hex(rng, 16)}-{rng.choice(('IAD', 'SJC', 'ORD'))}', 'error': "
        "{'message': 'You have been rate limited. Your rate limits are 600 RPM (10 QPS) and 180000 TPM "
        "(3000 TPS). Please try again later.', 'type': 'rate_limit', 'param': None, 'code': None}}"
    )


def _mistral_rate_limit(rng: Random, model: str, window: int) -> tuple[str, str]:
    return "SDKError", (
        'API error occurred: Status 429\n{"object":"error","message":"Requests rate limit exceeded",'
        f'"type":"rate_limited","param":null,"code":"1300"}} (request id {_hex(rng, 32)})'
    )


def _context_length(rng: Random, model: str, window: int) -> tuple[str, str]:
    provider = MODELS[model][0]
    total = window + rng.randrange(50, 12000)
    if provider == "openai":
        functions = rng.randrange(600, 2500)
        return "BadRequestError", (
            "Error code: 400 - {'error': {'message': \"This model's maximum context length is "
            f"{window} tokens. However, your messages resulted in {total} tokens ({total - functions} "
            f"in the messages, {functions} in the functions). Please reduce the length of the messages "
            "or functions.\", 'type': 'invalid_request_error', 'param': 'messages', "
            "'code': 'context_length_exceeded'}}"
        )
    if provider == "anthropic":
        return "BadRequestError", (
            "Error code: 400 - {'type': 'error', 'error': {'type': 'invalid_request_error', "
            f"'message': 'prompt is too long: {total} tokens > {window} maximum'}}}}"
        )
    if provider == "together":
        completion = rng.choice((1024, 2048, 4096))
        return "BadRequestError", (
            "Error code: 400 - {'object': 'error', 'message': \"This model's maximum context length is "
            f"{window} tokens. However, you requested {total} tokens ({total - completion} in the "
            f"messages, {completion} in the completion). Please reduce the length of the messages or "
            "completion.\", 'type': 'BadRequestError', 'param': None, 'code': 400}"
        )
    return "SDKError", (
        f'API error occurred: Status 400\n{{"object":"error","message":"Prompt contains {total} tokens '
        f'and 0 draft tokens, too large for model with {window} maximum context length",'
        '"type":"invalid_request_message_error","param":null,"code":"3051"}'
    )


def _content_filter(rng: Random, model: str, window: int) -> tuple[str, str]:
    jailbreak = rng.random() < 0.5
    severity = rng.choice(("medium", "high"))

    def cat(name: str, hit: bool) -> str:
        return f"'{name}': {{'filtered': {hit}, 'severity': '{severity if hit else 'safe'}'}}"

    hit = "" if jailbreak else rng.choice(("hate", "self_harm", "sexual", "violence"))
    cats = ", ".join(cat(c, c == hit) for c in ("hate", "self_harm", "sexual", "violence"))
    return "BadRequestError", (
        "Error code: 400 - {'error': {'message': \"The response was filtered due to the prompt "
        "triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To "
        "learn more about our content filtering policies please read our documentation: "
        "https://go.microsoft.com/fwlink/?linkid=2198766\", 'type': None, 'param': 'prompt', "
        "'code': 'content_filter', 'status': 400, 'innererror': {'code': 'ResponsibleAIPolicyViolation', "
        f"'content_filter_result': {{{cats}, 'jailbreak': {{'filtered': {jailbreak}, "
        f"'detected': {jailbreak}}}}}}}}}}}"
    )


def _llm_auth(rng: Random, model: str, window: int) -> tuple[str, str]:
    provider = MODELS[model][0]
    if provider == "openai":
        return "AuthenticationError", (
            "Error code: 401 - {'error': {'message': 'Incorrect API key provided: sk-proj-"
            f"{'*' * 20}{_alnum(rng, 4)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.', 'type': 'invalid_request_error', "
            "'param': None, 'code': 'invalid_api_key'}}"
        )
    if provider == "anthropic":
        return "AuthenticationError", (
            "Error code: 401 - {'type': 'error', 'error': {'type': 'authentication_error', "
            "'message': 'invalid x-api-key'}, "
            f"'request_id': 'req_011C{_alnum(rng, 20)}'}}"
        )
    if provider == "together":
        return "AuthenticationError", (
            "Error code: 401 - {'message': 'Invalid API key provided. You can find your API key at "
            "https://api.together.xyz/settings/api-keys.', 'type_': 'invalid_request_error', "
            "'code': 'invalid_api_key'}"
        )
    return "SDKError", (
        f'API error occurred: Status 401\n{{"message":"Unauthorized","request_id":"{_hex(rng, 32)}"}}'
    )


def _llm_5xx(rng: Random, model: str, window: int) -> tuple[str, str]:
    provider = MODELS[model][0]
    if provider == "anthropic":
        return rng.choice(("InternalServerError", "OverloadedError")), (
            "Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error', "
            f"'message': 'Overloaded'}}, 'request_id': 'req_011C{_alnum(rng, 20)}'}}"
        )
    if provider == "openai":
        if rng.random() < 0.5:
            return "InternalServerError", (
                "Error code: 502 - <html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
                "</body>\r\n</html>"
            )
        return "InternalServerError", (
            "Error code: 500 - {'error': {'message': 'The server had an error while processing your "
            "request. Sorry about that! You can retry your request, or contact us through our help "
            "center at help.openai.com if the error persists. (Please include the request ID "
            f"req_{_hex(rng, 32)} in your message.)', 'type': 'server_error', 'param': None, "
            "'code': None}}"
        )
    if provider == "together":
        return "InternalServerError", (
            "Error code: 503 - {'error': {'message': 'The server is overloaded or not ready yet.', "
            f"'type': 'server_error', 'param': None, 'code': None}}, 'id': '{_hex(rng, 16)}'}}"
        )
    return "SDKError", (
        'API error occurred: Status 503\n{"object":"error","message":"Service unavailable.",'
        f'"type":"internal_server_error","param":null,"code":"1000","request_id":"{_hex(rng, 32)}"}}'
    )


def _llm_unknown(rng: Random, model: str, window: int) -> tuple[str, str]:
    return rng.choice(
        (
            ("KeyError", "'choices'"),
            ("AttributeError", "'NoneType' object has no attribute 'get'"),
            ("RuntimeError", "Agent stopped due to iteration limit or time limit."),
            ("IndexError", "list index out of range"),
        )
    )


_LLMErr = Callable[[Random, str, int], tuple[str, str]]
LLM_WORDING: dict[str, dict[str, _LLMErr]] = {
    "rate_limit": {
        "openai": _openai_rate_limit,
        "anthropic": _anthropic_rate_limit,
        "together": _together_rate_limit,
        "mistral": _mistral_rate_limit,
    },
    "context_length_exceeded": dict.fromkeys(("openai", "anthropic", "together", "mistral"), _context_length),
    "policy_violation": {"openai": _content_filter},
    "authentication": dict.fromkeys(("openai", "anthropic", "together", "mistral"), _llm_auth),
    "upstream_error": dict.fromkeys(("openai", "anthropic", "together", "mistral"), _llm_5xx),
    "unknown": dict.fromkeys(("openai", "anthropic", "together", "mistral"), _llm_unknown),
}


def pydantic_missing(rng: Random, tool: str) -> tuple[str, str]:
    _, _, args_model, field, sample = TOOLS[tool]
    sample = sample.replace("{n}", str(rng.randrange(10000, 99999)))
    return "ValidationError", (
        f"1 validation error for {args_model}\n{field}\n  Field required [type=missing, "
        f"input_value={sample}, input_type=dict]\n"
        "    For further information visit https://errors.pydantic.dev/2.8/v/missing"
    )


def requests_read_timeout(tool: str, timeout: int) -> tuple[str, str]:
    host = TOOLS[tool][1]
    return "ReadTimeout", (
        f"HTTPSConnectionPool(host='{host}', port=443): Read timed out. (read timeout={timeout})"
    )


def tool_error(cls: str, rng: Random, tool: str, timeout: int) -> tuple[str, str]:
    _, host, args_model, field, _ = TOOLS[tool]
    r = rng.random()
    if cls == "tool_schema_mismatch":
        if r < 0.3:
            return "ValidationError", f"'{field}' is a required property"
        if r < 0.45:
            value = rng.choice((f"{rng.randrange(2, 90)} units", "next week", f"#{rng.randrange(100, 999)}"))
            return "ValidationError", f"'{value}' is not of type 'integer'"
        if r < 0.7:
            return pydantic_missing(rng, tool)
        col = rng.randrange(12, 240)
        what = rng.choice(
            (
                "Expecting ',' delimiter",
                "Unterminated string starting at",
                "Expecting property name enclosed in double quotes",
                "Expecting value",
            )
        )
        return "JSONDecodeError", f"{what}: line 1 column {col} (char {col - 1})"
    if cls == "tool_timeout":
        if tool == "sql_query" and r < 0.6:
            return "QueryCanceled", "canceling statement due to statement timeout"
        if r < 0.45:
            return requests_read_timeout(tool, timeout)
        if r < 0.65:
            return "ReadTimeout", "The read operation timed out"
        if r < 0.85:
            return "ConnectTimeout", (
                f"HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded with url: "
                f"/v2/{tool.split('_')[0]}/{rng.randrange(1000, 99999)} (Caused by ConnectTimeoutError("
                f"<urllib3.connection.HTTPSConnection object at 0x7f{_hex(rng, 10)}>, 'Connection to "
                f"{host} timed out. (connect timeout={timeout})'))"
            )
        return "TimeoutError", f"Tool '{tool}' timed out after {timeout} seconds"
    if cls == "upstream_error":
        code, reason = rng.choice(
            (
                (502, "Bad Gateway"),
                (503, "Service Unavailable"),
                (504, "Gateway Timeout"),
                (500, "Internal Server Error"),
            )
        )
        return "HTTPError", (
            f"{code} Server Error: {reason} for url: https://{host}/v2/{tool.split('_')[0]}/"
            f"{rng.randrange(1000, 999999)}"
        )
    if cls == "authentication":
        if r < 0.6:
            return "HTTPError", (
                f"401 Client Error: Unauthorized for url: https://{host}/v2/{tool.split('_')[0]}/"
                f"{rng.randrange(1000, 999999)}"
            )
        return "HTTPStatusError", (
            f"Client error '403 Forbidden' for url 'https://{host}/v1/{tool}'\nFor more information "
            "check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/403"
        )
    return rng.choice(
        (
            ("TypeError", "Object of type Decimal is not JSON serializable"),
            ("KeyError", f"'{field}'"),
            (
                "UnicodeDecodeError",
                f"'utf-8' codec can't decode byte 0x{_hex(rng, 2)} in position "
                f"{rng.randrange(10, 5000)}: invalid start byte",
            ),
        )
    )


def retrieval_error(rng: Random, index: str) -> tuple[str, str]:
    r = rng.random()
    if r < 0.35:
        return "RetrievalError", (
            f"Retriever returned 0 documents from index '{index}' "
            f"(top_k=8, score_threshold=0.{rng.randrange(60, 90)})"
        )
    if r < 0.55:
        return "UnexpectedResponse", (
            'Unexpected Response: 404 (Not Found)\nRaw response content:\nb\'{"status":{"error":'
            f'"Not found: Collection `{index}` doesn\\\'t exist!"}},"time":{rng.randrange(8, 60)}e-06}}\''
        )
    if r < 0.75:
        return "PineconeApiException", (
            "(400)\nReason: Bad Request\nHTTP response headers: HTTPHeaderDict({'content-type': "
            f"'application/json', 'content-length': '103', 'x-pinecone-request-latency-ms': "
            f"'{rng.randrange(3, 90)}', 'x-pinecone-request-id': '{rng.randrange(10**18, 10**19)}', "
            '\'server\': \'envoy\'})\nHTTP response body: {"code":3,"message":"Vector dimension 1536 '
            'does not match the dimension of the index 3072","details":[]}\n'
        )
    if r < 0.9:
        return "DataException", f"different vector dimensions 1536 and {rng.choice((384, 768, 1024, 3072))}"
    ip = f"10.0.{rng.randrange(0, 16)}.{rng.randrange(2, 250)}"
    return "OperationalError", (
        f'connection failed: connection to server at "{ip}", port 5432 failed: FATAL:  sorry, too many '
        "clients already"
    )


def policy_error(rng: Random, guard: str, tool: str) -> tuple[str, str]:
    if guard == "tool_policy":
        if tool == "send_email":
            domain = rng.choice(("gmail.com", "yahoo.com", "proton.me", "outlook.com"))
            return "PolicyViolationError", (
                f"Tool call 'send_email' blocked by policy 'outbound-email-allowlist': recipient domain "
                f"'{domain}' is not allowed"
            )
        if tool == "refund_issue":
            return "PolicyViolationError", (
                "Tool call 'refund_issue' blocked by policy 'refund-limit': amount "
                f"{rng.randrange(501, 5000)}.00 EUR exceeds the 500.00 EUR limit for automated refunds"
            )
        return "PolicyViolationError", f"Tool call '{tool}' blocked by policy 'human-approval-required'"
    r = rng.random()
    if r < 0.4:
        which = "InputGuardrail" if guard == "input_guard" else "OutputGuardrail"
        return f"{which}TripwireTriggered", f"Guardrail {which} triggered tripwire"
    if r < 0.7:
        entities = rng.choice(("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "EMAIL_ADDRESS, PHONE_NUMBER"))
        return "GuardrailBlocked", (
            f"Blocked by guardrail 'pii_detector': detected {entities} (score={rng.uniform(0.8, 1.0):.2f})"
        )
    return "ValidationError", (
        f"Validation failed for field with errors: Found {rng.randrange(1, 4)} toxic sentence(s) in the "
        "text (threshold=0.5)"
    )

