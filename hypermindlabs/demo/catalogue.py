"""The demo's world: projects, scenarios, tools, models and how often each fails (pure data).

Weights and probabilities only; :mod:`hypermindlabs.demo.workload` draws runs from them and
:mod:`hypermindlabs.demo.wording` words their errors.
"""

from __future__ import annotations

from datetime import timedelta

# --------------------------------------------------------------------------------------------------
# The world: projects → scenarios → tools, models with their speed, size and failure habits.

# project: (traffic weight, {scenario: weight}, {model: weight})
PROJECTS: dict[str, tuple[float, dict[str, float], dict[str, float]]] = {
    "acme-support": (
        0.40,
        {"support_triage": 0.45, "refund_request": 0.30, "order_status": 0.25},
        {
            "gpt-4o-mini": 0.38,
            "gpt-4o": 0.22,
            "claude-3-5-sonnet": 0.15,
            "claude-3-haiku": 0.15,
            "mistral-large": 0.10,
        },
    ),
    "acme-sales": (
        0.25,
        {"lead_qualification": 0.40, "meeting_scheduling": 0.30, "crm_enrichment": 0.30},
        {"claude-3-5-sonnet": 0.35, "gpt-4o": 0.30, "gpt-4o-mini": 0.20, "claude-3-haiku": 0.15},
    ),
    "acme-analytics": (
        0.15,
        {"sql_report": 0.65, "document_summary": 0.35},
        {"gpt-4o": 0.40, "claude-3-5-sonnet": 0.30, "llama-3.1-70b": 0.30},
    ),
    "acme-helpdesk": (
        0.20,
        {"it_helpdesk": 0.55, "knowledge_qa": 0.45},
        {"llama-3.1-70b": 0.45, "gpt-4o-mini": 0.30, "mistral-large": 0.25},
    ),
}

# model: (provider, time to first token ms, ms per output token, context window, schema-error factor)
MODELS: dict[str, tuple[str, float, float, int, float]] = {
    "gpt-4o": ("openai", 450.0, 12.0, 128000, 1.0),
    "gpt-4o-mini": ("openai", 300.0, 7.0, 128000, 1.6),
    "claude-3-5-sonnet": ("anthropic", 600.0, 14.0, 200000, 0.9),
    "claude-3-haiku": ("anthropic", 250.0, 6.0, 200000, 1.6),
    "llama-3.1-70b": ("together", 350.0, 18.0, 131072, 1.4),
    "mistral-large": ("mistral", 500.0, 15.0, 131072, 1.2),
}

# model: (input token factor — tokenizers differ —, output verbosity factor)
VERBOSITY: dict[str, tuple[float, float]] = {
    "gpt-4o": (1.0, 1.0),
    "gpt-4o-mini": (1.0, 0.9),
    "claude-3-5-sonnet": (1.15, 1.35),
    "claude-3-haiku": (1.15, 0.95),
    "llama-3.1-70b": (1.05, 1.15),
    "mistral-large": (1.1, 1.1),
}

# tool: (median latency ms, host, pydantic args model, a required argument, a sample argument dict)
TOOLS: dict[str, tuple[float, str, str, str, str]] = {
    "web_search": (850, "api.search.example.com", "WebSearchArgs", "query", "{'num_results': 5}"),
    "http_fetch": (600, "intranet.example.com", "HttpFetchArgs", "url", "{'timeout': 10}"),
    "crm_lookup": (300, "api.crm.example.com", "CrmLookupArgs", "contact_id", "{'fields': ['email']}"),
    "crm_update": (380, "api.crm.example.com", "CrmUpdateArgs", "contact_id", "{'stage': 'qualified'}"),
    "sql_query": (450, "warehouse.internal.example.com", "SqlQueryArgs", "sql", "{'limit': 100}"),
    "send_email": (320, "smtp-relay.example.com", "SendEmailArgs", "to", "{'subject': 'Your order'}"),
    "calendar_create": (410, "calendar.example.com", "CalendarCreateArgs", "start_time", "{'duration': 30}"),
    "calendar_lookup": (260, "calendar.example.com", "CalendarLookupArgs", "attendee", "{'days': 7}"),
    "order_lookup": (220, "orders.example.com", "OrderLookupArgs", "order_id", "{'include': 'items'}"),
    "refund_issue": (540, "payments.example.com", "RefundIssueArgs", "amount", "{'order_id': 'A-{n}'}"),
    "shipping_track": (
        700,
        "api.shipping.example.com",
        "ShippingTrackArgs",
        "tracking_number",
        "{'carrier': 'ups'}",
    ),
    "ticket_create": (350, "helpdesk.example.com", "TicketCreateArgs", "subject", "{'priority': 'high'}"),
    "ticket_update": (300, "helpdesk.example.com", "TicketUpdateArgs", "ticket_id", "{'status': 'solved'}"),
    "slack_post": (250, "slack.com", "SlackPostArgs", "channel", "{'text': 'Daily report'}"),
    "user_lookup": (180, "directory.example.com", "UserLookupArgs", "email", "{'active': True}"),
    "password_reset": (400, "directory.example.com", "PasswordResetArgs", "user_id", "{'notify': True}"),
    "pdf_extract": (1600, "docs.example.com", "PdfExtractArgs", "document_id", "{'pages': '1-4'}"),
    "python_exec": (1200, "sandbox.example.com", "PythonExecArgs", "code", "{'timeout': 30}"),
    "translate_text": (500, "translate.example.com", "TranslateTextArgs", "target_lang", "{'text': 'Hallo'}"),
    "weather_lookup": (300, "api.weather.example.com", "WeatherLookupArgs", "city", "{'units': 'metric'}"),
}

# Tools whose calls pass a tool-policy check first.
GUARDED_TOOLS = frozenset({"send_email", "refund_issue", "password_reset", "python_exec"})

# scenario: (retrieval index or None, P(retrieval), P(input guard), P(output guard),
#            {tool: weight}, (min, max) tool calls, system prompt tokens)
SCENARIOS: dict[str, tuple[str | None, float, float, float, dict[str, float], tuple[int, int], int]] = {
    "support_triage": (
        "kb-support-v3",
        0.9,
        0.6,
        0.3,
        {"ticket_create": 3, "ticket_update": 3, "user_lookup": 2, "slack_post": 1, "translate_text": 1},
        (1, 3),
        1800,
    ),
    "refund_request": (
        "refund-policy",
        0.8,
        0.5,
        0.6,
        {"order_lookup": 4, "refund_issue": 5, "send_email": 2, "shipping_track": 1},
        (2, 4),
        2200,
    ),
    "order_status": (
        None,
        0.0,
        0.4,
        0.2,
        {"order_lookup": 5, "shipping_track": 4, "send_email": 1, "weather_lookup": 1},
        (1, 3),
        1200,
    ),
    "lead_qualification": (
        "sales-playbook",
        0.5,
        0.2,
        0.2,
        {"crm_lookup": 4, "web_search": 4, "crm_update": 3},
        (2, 4),
        2600,
    ),
    "meeting_scheduling": (
        None,
        0.0,
        0.2,
        0.1,
        {"calendar_lookup": 4, "calendar_create": 4, "send_email": 2, "crm_update": 2, "weather_lookup": 1},
        (1, 3),
        1400,
    ),
    "crm_enrichment": (
        None,
        0.0,
        0.1,
        0.1,
        {"crm_lookup": 3, "web_search": 3, "http_fetch": 2, "crm_update": 5},
        (2, 5),
        1600,
    ),
    "sql_report": (
        "warehouse-schema",
        0.7,
        0.3,
        0.2,
        {"sql_query": 6, "python_exec": 3, "slack_post": 1},
        (1, 4),
        3200,
    ),
    "document_summary": (
        "contracts-v2",
        0.9,
        0.3,
        0.5,
        {"pdf_extract": 4, "translate_text": 2, "send_email": 1},
        (1, 2),
        2000,
    ),
    "it_helpdesk": (
        "it-kb",
        0.8,
        0.5,
        0.3,
        {"user_lookup": 3, "password_reset": 2, "ticket_create": 3, "slack_post": 1},
        (1, 3),
        1500,
    ),
    "knowledge_qa": ("handbook-v5", 1.0, 0.6, 0.4, {"web_search": 1, "http_fetch": 1}, (0, 1), 1300),
}

ENVS = (("prod", 0.85), ("staging", 0.15))
TIERS = (("free", 0.5), ("pro", 0.35), ("enterprise", 0.15))
RELEASES = ("2.1.0", "2.2.0", "2.3.0", "2.4.0")

# Failure probabilities per step, by class: (probability, P(the agent recovers and carries on)).
LLM_FAILS = {
    "rate_limit": (0.0040, 0.7),
    "upstream_error": (0.0025, 0.5),
    "context_length_exceeded": (0.0008, 0.0),
    "policy_violation": (0.0007, 0.0),
    "authentication": (0.0003, 0.0),
    "unknown": (0.0003, 0.0),
}
TOOL_FAILS = {
    "tool_schema_mismatch": (0.0050, 0.2),
    "tool_timeout": (0.0045, 0.3),
    "upstream_error": (0.0020, 0.4),
    "authentication": (0.0004, 0.0),
    "unknown": (0.0004, 0.0),
}
RETRIEVAL_FAIL = (0.008, 0.2)
POLICY_FAIL = (0.012, 0.0)

# Hourly traffic shape (UTC hour of day) and the weekend damping.
HOURLY = (
    0.18,
    0.15,
    0.13,
    0.12,
    0.13,
    0.18,
    0.30,
    0.50,
    0.80,
    1.00,
    1.05,
    1.00,
    0.85,
    0.95,
    1.05,
    1.00,
    0.90,
    0.70,
    0.50,
    0.40,
    0.35,
    0.30,
    0.25,
    0.20,
)
WEEKEND = 0.35

# The injected regression: in the bad release, this slice's refund tool gets malformed arguments
# (a new prompt template the small model misreads) and its prompts grow, so LLM steps slow down.
REG = {"model": "gpt-4o-mini", "scenario": "refund_request", "tool": "refund_issue"}
REG_SCHEMA_P, REG_RECOVER_P, REG_SLOWDOWN, REG_PROMPT_GROWTH = 0.35, 0.35, 2.0, 1.5
# The recurring burst: the CRM provider's daily sync job starves its API for three hours.
BURST_TOOL, BURST_HOUR, BURST_HOURS, BURST_DAYS, BURST_TIMEOUT_P = "crm_update", 13, 3, 3, 0.6

H = timedelta(hours=1)
MS_PER_H = 3_600_000


def fail_table(table: dict[str, tuple[float, float]], model: str):
    """Per-model failure table: small models fumble tool arguments more; only Azure/OpenAI filters."""
    provider, *_, schema_factor = MODELS[model]
    rows = []
    for cls, (p, recover) in table.items():
        if cls == "tool_schema_mismatch":
            p *= schema_factor
        if cls == "policy_violation" and provider != "openai":
            continue
        if cls == "upstream_error" and provider == "anthropic":
            p *= 2.0  # overloaded_error is the Anthropic classic
        rows.append((cls, p, recover))
    return sum(p for _, p, _ in rows), rows


def pick_class(rows: list[tuple[str, float, float]], r: float) -> tuple[str, float]:
    acc = 0.0
    for cls, p, recover in rows:
        acc += p
        if r < acc:
            return cls, recover
    return rows[-1][0], rows[-1][2]
