"""Deterministic demo workload: weeks of agent runs with an injected regression and a failure burst.

The generator powers ``hypermind-obs demo``, the product demo and the benchmarks. It is pure: no clock
(``end`` is passed in), no environment, one ``random.Random(seed)`` — the same spec and
``runs_per_day`` give the same events, byte for byte.

    >>> from datetime import UTC, datetime
    >>> spec = demo_spec(end=datetime(2024, 5, 15, tzinfo=UTC), days=2)
    >>> events = list(generate_events(spec, runs_per_day=50))
    >>> events[-1]["kind"] in {"run", "llm", "tool", "retrieval", "policy"}
    True

Events follow the run event contract (DESIGN §2): per run, its child events in time order, then its
``run`` event. Times deliberately mix RFC 3339 strings, epoch s/ms/µs/ns and ``duration_ms``; some
events omit ``event_id`` or the dimensions they inherit from their run; some LLM steps report only
characters. Every failing event carries the failure class it was generated as in
``attributes["demo.failure_class"]`` — ground truth for triage tests, not part of the contract.
"""

from __future__ import annotations

import math
import time
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from random import Random
from statistics import NormalDist

__all__ = ["FAILURE_CLASSES", "DemoSpec", "demo_spec", "generate_events"]

FAILURE_CLASSES: tuple[str, ...] = (
    "tool_schema_mismatch",
    "tool_timeout",
    "retrieval_failure",
    "policy_violation",
    "rate_limit",
    "context_length_exceeded",
    "authentication",
    "upstream_error",
    "unknown",
)


@dataclass(frozen=True)
class DemoSpec:
    """What the demo injects, so tests and docs can assert it. Build it with :func:`demo_spec`."""

    seed: int
    start: datetime
    end: datetime
    projects: tuple[str, ...]
    models: tuple[str, ...]
    tools: tuple[str, ...]
    scenarios: tuple[str, ...]
    regression_release: str
    regression_at: datetime
    regression_model: str
    regression_scenario: str
    burst_start: datetime
    burst_end: datetime
    burst_tool: str
    #: (version, rolled out at), oldest first; the first one is live from ``start``.
    releases: tuple[tuple[str, datetime], ...]
    regression_tool: str
    regression_failure_class: str
    #: every occurrence of the burst; the first is (burst_start, burst_end).
    burst_windows: tuple[tuple[datetime, datetime], ...]
    envs: tuple[str, ...]
    failure_classes: tuple[str, ...]

    def release_at(self, when: datetime) -> str:
        """The release live at ``when``."""
        live = self.releases[0][0]
        for version, at in self.releases:
            if at <= when:
                live = version
        return live

    def in_burst(self, when: datetime) -> bool:
        return any(s <= when < e for s, e in self.burst_windows)


# --------------------------------------------------------------------------------------------------
# The world: projects → scenarios → tools, models with their speed, size and failure habits.

# project: (traffic weight, {scenario: weight}, {model: weight})
_PROJECTS: dict[str, tuple[float, dict[str, float], dict[str, float]]] = {
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
_MODELS: dict[str, tuple[str, float, float, int, float]] = {
    "gpt-4o": ("openai", 450.0, 12.0, 128000, 1.0),
    "gpt-4o-mini": ("openai", 300.0, 7.0, 128000, 1.6),
    "claude-3-5-sonnet": ("anthropic", 600.0, 14.0, 200000, 0.9),
    "claude-3-haiku": ("anthropic", 250.0, 6.0, 200000, 1.6),
    "llama-3.1-70b": ("together", 350.0, 18.0, 131072, 1.4),
    "mistral-large": ("mistral", 500.0, 15.0, 131072, 1.2),
}

# model: (input token factor — tokenizers differ —, output verbosity factor)
_VERBOSITY: dict[str, tuple[float, float]] = {
    "gpt-4o": (1.0, 1.0),
    "gpt-4o-mini": (1.0, 0.9),
    "claude-3-5-sonnet": (1.15, 1.35),
    "claude-3-haiku": (1.15, 0.95),
    "llama-3.1-70b": (1.05, 1.15),
    "mistral-large": (1.1, 1.1),
}

# tool: (median latency ms, host, pydantic args model, a required argument, a sample argument dict)
_TOOLS: dict[str, tuple[float, str, str, str, str]] = {
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
_GUARDED_TOOLS = frozenset({"send_email", "refund_issue", "password_reset", "python_exec"})

# scenario: (retrieval index or None, P(retrieval), P(input guard), P(output guard),
#            {tool: weight}, (min, max) tool calls, system prompt tokens)
_SCENARIOS: dict[str, tuple[str | None, float, float, float, dict[str, float], tuple[int, int], int]] = {
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

_ENVS = (("prod", 0.85), ("staging", 0.15))
_TIERS = (("free", 0.5), ("pro", 0.35), ("enterprise", 0.15))
_RELEASES = ("2.1.0", "2.2.0", "2.3.0", "2.4.0")

# Failure probabilities per step, by class: (probability, P(the agent recovers and carries on)).
_LLM_FAILS = {
    "rate_limit": (0.0040, 0.7),
    "upstream_error": (0.0025, 0.5),
    "context_length_exceeded": (0.0008, 0.0),
    "policy_violation": (0.0007, 0.0),
    "authentication": (0.0003, 0.0),
    "unknown": (0.0003, 0.0),
}
_TOOL_FAILS = {
    "tool_schema_mismatch": (0.0050, 0.2),
    "tool_timeout": (0.0045, 0.3),
    "upstream_error": (0.0020, 0.4),
    "authentication": (0.0004, 0.0),
    "unknown": (0.0004, 0.0),
}
_RETRIEVAL_FAIL = (0.008, 0.2)
_POLICY_FAIL = (0.012, 0.0)

# Hourly traffic shape (UTC hour of day) and the weekend damping.
_HOURLY = (
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
_WEEKEND = 0.35

# The injected regression: in the bad release, this slice's refund tool gets malformed arguments
# (a new prompt template the small model misreads) and its prompts grow, so LLM steps slow down.
_REG = {"model": "gpt-4o-mini", "scenario": "refund_request", "tool": "refund_issue"}
_REG_SCHEMA_P, _REG_RECOVER_P, _REG_SLOWDOWN, _REG_PROMPT_GROWTH = 0.35, 0.35, 2.0, 1.5
# The recurring burst: the CRM provider's daily sync job starves its API for three hours.
_BURST_TOOL, _BURST_HOUR, _BURST_HOURS, _BURST_DAYS, _BURST_TIMEOUT_P = "crm_update", 13, 3, 3, 0.6

_H = timedelta(hours=1)
_MS_PER_H = 3_600_000


def demo_spec(*, seed: int = 7, end: datetime, days: int = 14) -> DemoSpec:
    """Describe a demo workload covering ``days`` days up to ``end`` (timezone-aware).

    The bad release rolls out 26 h before ``end`` (a third of the window for short windows), so the
    default "last 24 h vs the 7 days before" comparison sees it; the burst recurs daily on the last
    three days.
    """
    if end.tzinfo is None:
        raise ValueError("end: must be timezone-aware (e.g. datetime.now(UTC))")
    if days < 1:
        raise ValueError(f"days: must be >= 1, got {days}")
    end = end.astimezone(UTC)
    start = end - timedelta(days=days)
    span = end - start
    regression_at = _floor_hour(end - min(timedelta(hours=26), span / 3))
    before = regression_at - start
    releases = (
        (_RELEASES[0], start),
        (_RELEASES[1], _floor_hour(start + before * 0.35)),
        (_RELEASES[2], _floor_hour(start + before * 0.7)),
        (_RELEASES[3], regression_at),
    )
    day = (end - timedelta(hours=_BURST_HOUR + _BURST_HOURS)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    windows = []
    for back in range(_BURST_DAYS - 1, -1, -1):
        b_start = day - timedelta(days=back) + timedelta(hours=_BURST_HOUR)
        if b_start >= start:
            windows.append((b_start, b_start + timedelta(hours=_BURST_HOURS)))
    if not windows:  # a window too short for the daily slot: put one burst in its middle
        mid = _floor_hour(start + span / 2)
        windows.append((mid, mid + _H))
    return DemoSpec(
        seed=seed,
        start=start,
        end=end,
        projects=tuple(_PROJECTS),
        models=tuple(_MODELS),
        tools=tuple(_TOOLS),
        scenarios=tuple(_SCENARIOS),
        regression_release=_RELEASES[3],
        regression_at=regression_at,
        regression_model=_REG["model"],
        regression_scenario=_REG["scenario"],
        burst_start=windows[0][0],
        burst_end=windows[0][1],
        burst_tool=_BURST_TOOL,
        releases=releases,
        regression_tool=_REG["tool"],
        regression_failure_class="tool_schema_mismatch",
        burst_windows=tuple(windows),
        envs=tuple(e for e, _ in _ENVS),
        failure_classes=FAILURE_CLASSES,
    )


def generate_events(spec: DemoSpec, *, runs_per_day: int = 1500) -> Iterator[dict]:
    """Yield the workload's events in run start order: each run's children, then its run event.

    ``runs_per_day`` is the mean over a week; weekdays get more, weekends fewer. Runs that would
    still be in flight at ``spec.end`` are left out, so no event lies in the future.
    """
    if runs_per_day < 1:
        raise ValueError(f"runs_per_day: must be >= 1, got {runs_per_day}")
    yield from _Workload(spec, Random(spec.seed)).events(runs_per_day)


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _cumulative(weights: dict[str, float] | tuple[tuple[str, float], ...]):
    items = list(weights.items()) if isinstance(weights, dict) else list(weights)
    total, cum = 0.0, []
    for _, w in items:
        total += w
        cum.append(total)
    return tuple(k for k, _ in items), [c / total for c in cum]


_NOISE_STEPS = 4096


@cache
def _lognormal_quantiles(sigma: float) -> tuple[float, ...]:
    normal = NormalDist()
    return tuple(math.exp(sigma * normal.inv_cdf((i + 0.5) / _NOISE_STEPS)) for i in range(_NOISE_STEPS))


@cache
def _seconds_z() -> tuple[str, ...]:
    """ "SS.mmmZ" for every millisecond of a minute: RFC 3339 formatting is then one concatenation."""
    return tuple(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60_000))


# Time forms cycle with a prime period so they spread over kinds and step positions.
_RFC, _EPOCH_MS, _EPOCH_S, _DURATION, _EPOCH_US, _EPOCH_NS = range(6)
_FORMS = (
    _RFC,
    _EPOCH_MS,
    _RFC,
    _EPOCH_S,
    _EPOCH_MS,
    _RFC,
    _DURATION,
    _EPOCH_S,
    _RFC,
    _EPOCH_MS,
    _EPOCH_US,
    _RFC,
    _EPOCH_S,
    _EPOCH_MS,
    _RFC,
    _DURATION,
    _EPOCH_NS,
)


class _Workload:
    """One pass over the window. Hot paths bind rng methods and tables to attributes once."""

    def __init__(self, spec: DemoSpec, rng: Random) -> None:
        self.spec = spec
        self.rng = rng
        self.random = rng.random
        self.gauss = rng.gauss
        # Log-normal multipliers (median 1) drawn by inverse CDF, `q[int(random() * _NOISE_STEPS)]`:
        # ~10x cheaper than gauss + exp, and this runs a few times per event.
        self.q20, self.q25, self.q30, self.q40, self.q50, self.q60 = (
            _lognormal_quantiles(sigma) for sigma in (0.2, 0.25, 0.3, 0.4, 0.5, 0.6)
        )
        self.bits = rng.getrandbits
        self.n = 0
        self.minutes: dict[int, str] = {}
        self.seconds_z = _seconds_z()
        self.projects = _cumulative({p: v[0] for p, v in _PROJECTS.items()})
        self.project_scenarios = {p: _cumulative(v[1]) for p, v in _PROJECTS.items()}
        self.project_models = {p: _cumulative(v[2]) for p, v in _PROJECTS.items()}
        self.scenario_tools = {s: _cumulative(v[4]) for s, v in _SCENARIOS.items()}
        self.envs = _cumulative(_ENVS)
        self.tiers = _cumulative(_TIERS)
        self.releases = [(_ms(at), v) for v, at in spec.releases]
        self.reg_ms = _ms(spec.regression_at)
        self.bursts = [(_ms(s), _ms(e)) for s, e in spec.burst_windows]
        self.llm_fails = {m: _fail_table(_LLM_FAILS, m) for m in _MODELS}
        self.tool_fails = {m: _fail_table(_TOOL_FAILS, m) for m in _MODELS}

    def pick(self, table) -> str:
        keys, cum = table
        return keys[bisect(cum, self.random())]

    # ---- time ------------------------------------------------------------------------------------

    def minute_prefix(self, minute: int) -> str:
        prefix = self.minutes[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return prefix

    def rfc3339(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        return (self.minutes.get(minute) or self.minute_prefix(minute)) + self.seconds_z[rest]

    def put_times(self, ev: dict, start: int, end: int) -> None:
        form = _FORMS[self.n % 17]
        if form == _RFC:
            minutes, seconds_z = self.minutes, self.seconds_z
            m, rest = divmod(start, 60_000)
            ev["start_time"] = (minutes.get(m) or self.minute_prefix(m)) + seconds_z[rest]
            m, rest = divmod(end, 60_000)
            ev["end_time"] = (minutes.get(m) or self.minute_prefix(m)) + seconds_z[rest]
        elif form == _EPOCH_MS:
            ev["start_time"] = start
            ev["end_time"] = end
        elif form == _EPOCH_S:
            ev["start_time"] = start / 1000
            ev["end_time"] = end / 1000
        elif form == _DURATION:
            ev["start_time"] = self.rfc3339(start)
            ev["duration_ms"] = end - start
        elif form == _EPOCH_US:
            ev["start_time"] = start * 1000
            ev["end_time"] = end * 1000
        else:
            ev["start_time"] = start * 1_000_000
            ev["end_time"] = end * 1_000_000

    def run_starts(self, runs_per_day: int) -> Iterator[int]:
        start_ms, end_ms = _ms(self.spec.start), _ms(self.spec.end)
        week = sum(_HOURLY) * (5 + 2 * _WEEKEND)
        per_weight = runs_per_day * 7 / week
        hour = _ms(_floor_hour(self.spec.start))
        while hour < end_ms:
            t = datetime.fromtimestamp(hour / 1000, UTC)
            w = _HOURLY[t.hour] * (_WEEKEND if t.weekday() >= 5 else 1.0)
            lo, hi = max(hour, start_ms), min(hour + _MS_PER_H, end_ms)
            expected = per_weight * w * (hi - lo) / _MS_PER_H * math.exp(self.gauss(0.0, 0.08))
            count = int(expected + self.random())
            span = hi - lo
            yield from sorted(lo + int(self.random() * span) for _ in range(count))
            hour += _MS_PER_H

    # ---- runs ------------------------------------------------------------------------------------

    def events(self, runs_per_day: int) -> Iterator[dict]:
        end_ms = _ms(self.spec.end)
        releases = self.releases
        for t0 in self.run_starts(runs_per_day):
            release = releases[0][1]
            for at, version in releases:
                if at <= t0:
                    release = version
            run, t_end = self.run(t0, release)
            if t_end <= end_ms:  # runs still in flight at `end` are drawn (for determinism), not shown
                yield from run

    def run(self, t0: int, release: str) -> tuple[list[dict], int]:
        random, bits = self.random, self.bits
        project = self.pick(self.projects)
        scenario = self.pick(self.project_scenarios[project])
        model = self.pick(self.project_models[project])
        env = self.pick(self.envs)
        tier = self.pick(self.tiers)
        index, p_retr, p_in, p_out, _, (lo, hi), sys_tokens = _SCENARIOS[scenario]
        run_id = f"run-{bits(96):024x}"
        trace_id = f"{bits(128):032x}"
        run_span = f"{bits(64):016x}"
        regressed = t0 >= self.reg_ms and model == _REG["model"] and scenario == _REG["scenario"]
        chars_only = random() < (0.6 if model == "llama-3.1-70b" else 0.02)

        ctx = _RunContext(
            self, run_id, trace_id, run_span, project, scenario, model, env, release, regressed, chars_only
        )
        ctx.prompt = float(sys_tokens)
        steps: list[tuple[Callable[[str, int], tuple[int, tuple[dict, str] | None]], str]] = []
        if random() < p_in:
            steps.append((ctx.policy, "input_guard"))
        if index is not None and random() < p_retr:
            steps.append((ctx.retrieval, index))
        calls = lo + int(random() * (hi - lo + 1))
        steps.append((ctx.llm, "final" if calls == 0 else "plan"))
        tools = self.scenario_tools[scenario]
        for k in range(calls):
            tool = self.pick(tools)
            if tool in _GUARDED_TOOLS:
                steps.append((ctx.policy, "tool_policy:" + tool))
            steps.append((ctx.tool, tool))
            steps.append((ctx.llm, "final" if k == calls - 1 else "after_tool"))
        if random() < p_out:
            steps.append((ctx.policy, "output_guard"))

        t = t0 + 5 + int(random() * 35)
        error: dict | None = None
        failure_class = ""
        for step, arg in steps:
            t, failed = step(arg, t)
            if failed is not None:
                error, failure_class = failed
                break
            t += 2 + int(random() * 20)
        t_end = t + 3 + int(random() * 15)

        ev: dict = {
            "event_id": f"{run_id}.0",
            "run_id": run_id,
            "trace_id": trace_id,
            "span_id": run_span,
            "kind": "run",
            "name": "invoke_agent " + scenario,
            "status": "ok" if error is None else "error",
            "project": project,
            "scenario": scenario,
            "model": model,
            "tags": {"env": env, "release": release, "tier": tier},
            "usage": (
                {"input_chars": ctx.in_units, "output_chars": ctx.out_units}
                if chars_only
                else {"input_tokens": ctx.in_units, "output_tokens": ctx.out_units}
            ),
            "attributes": {"tool_calls": ctx.tool_calls, "llm_calls": ctx.llm_calls},
        }
        if error is not None:
            ev["error"] = dict(error)
            ev["attributes"]["demo.failure_class"] = failure_class
        n = self.n = self.n + 1
        if n % 13 == 5:
            del ev["event_id"]
        self.put_times(ev, t0, t_end)
        ctx.events.append(ev)
        return ctx.events, t_end


class _RunContext:
    """Builds one run's child events; tracks its usage totals and call counts."""

    __slots__ = (
        "w",
        "run_id",
        "trace_id",
        "run_span",
        "project",
        "scenario",
        "model",
        "env",
        "release",
        "regressed",
        "chars_only",
        "prompt",
        "events",
        "in_units",
        "out_units",
        "tool_calls",
        "llm_calls",
        "i",
    )

    def __init__(
        self,
        w: _Workload,
        run_id: str,
        trace_id: str,
        run_span: str,
        project: str,
        scenario: str,
        model: str,
        env: str,
        release: str,
        regressed: bool,
        chars_only: bool,
    ) -> None:
        self.w = w
        self.run_id, self.trace_id, self.run_span = run_id, trace_id, run_span
        self.project, self.scenario, self.model = project, scenario, model
        self.env, self.release = env, release
        self.regressed, self.chars_only = regressed, chars_only
        self.prompt = 0.0
        self.events: list[dict] = []
        self.in_units = self.out_units = self.tool_calls = self.llm_calls = 0
        self.i = 0

    def event(
        self,
        kind: str,
        name: str,
        start: int,
        end: int,
        error: tuple[str, str] | None,
        failure_class: str = "",
        tool: str = "",
    ) -> dict:
        w = self.w
        i = self.i = self.i + 1
        n = w.n = w.n + 1
        run_id = self.run_id
        # One literal is cheaper than a dozen stores; times are appended last.
        ev: dict = {
            "event_id": f"{run_id}.{i}",
            "run_id": run_id,
            "trace_id": self.trace_id,
            "span_id": f"{w.bits(64):016x}",
            "parent_span_id": self.run_span,
            "kind": kind,
            "name": name,
            "status": "ok" if error is None else "error",
            "project": self.project,
            "scenario": self.scenario,
            "tags": {"env": self.env, "release": self.release},
        }
        if kind == "llm":
            ev["model"] = self.model
        elif tool:
            ev["tool"] = tool
        if n % 11 == 4:  # this one inherits project/scenario (and model) from its run
            del ev["project"], ev["scenario"]
            ev.pop("model", None)
        if n % 13 == 5:
            del ev["event_id"]
        if error is not None:
            ev["error"] = {"type": error[0], "message": error[1]}
            ev["attributes"] = {"demo.failure_class": failure_class}
        w.put_times(ev, start, end)
        self.events.append(ev)
        return ev

    def llm(self, arg: str, t: int) -> tuple[int, tuple[dict, str] | None]:
        w = self.w
        random, q20, q25, q30, q50 = w.random, w.q20, w.q25, w.q30, w.q50
        model = self.model
        _, ttft, per_tok, window, _ = _MODELS[model]
        in_factor, out_factor = _VERBOSITY[model]
        if self.regressed:
            in_factor *= _REG_PROMPT_GROWTH
        while True:
            self.llm_calls += 1
            in_tok = int(self.prompt * in_factor * q25[int(random() * _NOISE_STEPS)])
            out_tok = (
                int((280 if arg == "final" else 90) * out_factor * q50[int(random() * _NOISE_STEPS)]) + 5
            )
            ms = (
                ttft * q30[int(random() * _NOISE_STEPS)]
                + out_tok * per_tok * q20[int(random() * _NOISE_STEPS)]
            )
            if random() < 0.02:  # provider hiccup: the heavy tail
                ms *= min(15.0, w.rng.paretovariate(1.6))
            if self.regressed:
                ms *= _REG_SLOWDOWN
            r = random()
            total, table = w.llm_fails[model]
            if r >= total:
                end = t + int(ms)
                ev = self.event("llm", "chat " + model, t, end, None)
                self.add_usage(ev, in_tok, out_tok)
                self.prompt += out_tok + 250 + 250 * random()  # the reply and the next tool result
                return end, None
            cls, recover = _pick_class(table, r)
            err = _LLM_WORDING[cls][_MODELS[model][0]](w.rng, model, window)
            end = t + int(ms * (0.05 + 0.2 * random()) if cls != "upstream_error" else ms * random())
            ev = self.event("llm", "chat " + model, t, end, err, cls)
            if random() >= recover:
                return end, (ev["error"], cls)
            t = end + int(500 + 4000 * random())  # back off, then retry

    def add_usage(self, ev: dict, in_tok: int, out_tok: int) -> None:
        if self.chars_only:
            in_u, out_u = int(in_tok * 4.1), int(out_tok * 3.9)
            ev["usage"] = {"input_chars": in_u, "output_chars": out_u}
        else:
            in_u, out_u = in_tok, out_tok
            ev["usage"] = {"input_tokens": in_u, "output_tokens": out_u}
        self.in_units += in_u
        self.out_units += out_u

    def tool(self, tool: str, t: int) -> tuple[int, tuple[dict, str] | None]:
        w = self.w
        random = w.random
        median = _TOOLS[tool][0]
        total, table = w.tool_fails[self.model]
        in_burst = tool == _BURST_TOOL and any(s <= t < e for s, e in w.bursts)
        name = "execute_tool " + tool
        retried = False
        while True:
            self.tool_calls += 1
            ms = median * w.q60[int(random() * _NOISE_STEPS)]
            if random() < 0.02:
                ms *= min(20.0, w.rng.paretovariate(1.4))
            if self.regressed:
                ms *= _REG_SLOWDOWN
            cls, recover, timeout = "", 0.0, 0
            if self.regressed and tool == _REG["tool"] and not retried and random() < _REG_SCHEMA_P:
                cls, recover = "tool_schema_mismatch", _REG_RECOVER_P
                err = _pydantic_missing(w.rng, tool)
            elif in_burst and random() < _BURST_TIMEOUT_P:
                cls, recover, timeout = "tool_timeout", 0.25, 30
                err = _requests_read_timeout(tool, timeout)
            else:
                r = random()
                if r < total:
                    cls, recover = _pick_class(table, r)
                    timeout = w.rng.choice((10, 30, 60))
                    err = _tool_error(cls, w.rng, tool, timeout)
            if not cls:
                end = t + int(ms)
                self.event("tool", name, t, end, None, tool=tool)
                return end, None
            if cls == "tool_timeout":
                end = t + timeout * 1000 + int(random() * 40)
            else:
                end = t + int(ms * (0.1 + 0.4 * random()))
            ev = self.event("tool", name, t, end, err, cls, tool)
            if random() >= recover:
                return end, (ev["error"], cls)
            retried = True
            t = end + 5 + int(random() * 30)
            if cls == "tool_schema_mismatch":  # the model rewrites the arguments before retrying
                t, failed = self.llm("after_tool", t)
                if failed is not None:
                    return t, failed
                t += 3

    def retrieval(self, index: str, t: int) -> tuple[int, tuple[dict, str] | None]:
        w = self.w
        random = w.random
        while True:
            ms = 120 * w.q50[int(random() * _NOISE_STEPS)]
            if random() < 0.01:
                ms *= min(20.0, w.rng.paretovariate(1.5))
            end = t + int(ms) + 1
            if random() >= _RETRIEVAL_FAIL[0]:
                ev = self.event("retrieval", "retrieval " + index, t, end, None)
                ev["attributes"] = {"index": index, "top_k": 8, "documents": 3 + int(random() * 6)}
                self.prompt += 900 + 1500 * random()
                return end, None
            ev = self.event(
                "retrieval", "retrieval " + index, t, end, _retrieval_error(w.rng, index), "retrieval_failure"
            )
            if random() >= _RETRIEVAL_FAIL[1]:
                return end, (ev["error"], "retrieval_failure")
            t = end + 10 + int(random() * 200)

    def policy(self, check: str, t: int) -> tuple[int, tuple[dict, str] | None]:
        w = self.w
        end = t + 1 + int(40 * w.q40[int(w.random() * _NOISE_STEPS)])
        guard, _, tool = check.partition(":")
        if w.random() >= _POLICY_FAIL[0]:
            self.event("policy", "hypermind.guardrail " + guard, t, end, None)
            return end, None
        ev = self.event(
            "policy",
            "hypermind.guardrail " + guard,
            t,
            end,
            _policy_error(w.rng, guard, tool),
            "policy_violation",
        )
        return end, (ev["error"], "policy_violation")


def _fail_table(table: dict[str, tuple[float, float]], model: str):
    """Per-model failure table: small models fumble tool arguments more; only Azure/OpenAI filters."""
    provider, *_, schema_factor = _MODELS[model]
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


def _pick_class(rows: list[tuple[str, float, float]], r: float) -> tuple[str, float]:
    acc = 0.0
    for cls, p, recover in rows:
        acc += p
        if r < acc:
            return cls, recover
    return rows[-1][0], rows[-1][2]


# --------------------------------------------------------------------------------------------------
# Error wording, as real libraries and providers word it. Numbers, hosts and ids vary on purpose:
# triage must normalize them into one cluster template.


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
    provider = _MODELS[model][0]
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
    provider = _MODELS[model][0]
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
    provider = _MODELS[model][0]
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
_LLM_WORDING: dict[str, dict[str, _LLMErr]] = {
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


def _pydantic_missing(rng: Random, tool: str) -> tuple[str, str]:
    _, _, args_model, field, sample = _TOOLS[tool]
    sample = sample.replace("{n}", str(rng.randrange(10000, 99999)))
    return "ValidationError", (
        f"1 validation error for {args_model}\n{field}\n  Field required [type=missing, "
        f"input_value={sample}, input_type=dict]\n"
        "    For further information visit https://errors.pydantic.dev/2.8/v/missing"
    )


def _requests_read_timeout(tool: str, timeout: int) -> tuple[str, str]:
    host = _TOOLS[tool][1]
    return "ReadTimeout", (
        f"HTTPSConnectionPool(host='{host}', port=443): Read timed out. (read timeout={timeout})"
    )


def _tool_error(cls: str, rng: Random, tool: str, timeout: int) -> tuple[str, str]:
    _, host, args_model, field, _ = _TOOLS[tool]
    r = rng.random()
    if cls == "tool_schema_mismatch":
        if r < 0.3:
            return "ValidationError", f"'{field}' is a required property"
        if r < 0.45:
            value = rng.choice((f"{rng.randrange(2, 90)} units", "next week", f"#{rng.randrange(100, 999)}"))
            return "ValidationError", f"'{value}' is not of type 'integer'"
        if r < 0.7:
            return _pydantic_missing(rng, tool)
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
            return _requests_read_timeout(tool, timeout)
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


def _retrieval_error(rng: Random, index: str) -> tuple[str, str]:
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


def _policy_error(rng: Random, guard: str, tool: str) -> tuple[str, str]:
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
