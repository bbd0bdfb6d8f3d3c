"""Every name this product exports, in one place (DESIGN §4): metrics, labels, units, buckets, caps.

The exporter, the cardinality policy, the (later) recording/alert rules and Grafana dashboards
and the tests import these constants and never retype a string. Names follow the OpenTelemetry
GenAI semantic conventions where those name a thing (``gen_ai.*``, ``error.type``); everything
else is namespaced under ``hypermind``.

Each metric has an OTel-side name (what the SDK and OTLP see) and the Prometheus-side names that
PromQL uses after translation (dots → underscores, unit suffix ``_seconds``, counters ``_total``):

>>> OPERATION_DURATION.prom
'gen_ai_client_operation_duration_seconds'
>>> OPERATION_DURATION.prom_bucket
'gen_ai_client_operation_duration_seconds_bucket'
>>> AGENT_RUNS.prom
'hypermind_agent_runs_total'
>>> prom_label(ATTR_REQUEST_MODEL)
'gen_ai_request_model'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MetricSpec",
    "METRICS",
    "METRICS_BY_NAME",
    "prom_label",
    "DEFAULT_LABEL_BUDGETS",
    "OVERFLOW_VALUE",
]

# -- service / instrumentation scope --------------------------------------------------------------
SERVICE_NAME = "hypermind-obs"
METER_NAME = "hypermindlabs"
TRACER_NAME = "hypermindlabs"

# -- units (UCUM, as OTel wants them) -------------------------------------------------------------
UNIT_SECONDS = "s"
UNIT_TOKEN = "{token}"
UNIT_RUN = "{run}"
UNIT_CALL = "{call}"
UNIT_ERROR = "{error}"
UNIT_CHECK = "{check}"
UNIT_FAILURE = "{failure}"
UNIT_FOLD = "{fold}"
UNIT_ITEM = "{item}"

# -- attribute keys: OTel GenAI semantic conventions ----------------------------------------------
ATTR_OPERATION = "gen_ai.operation.name"
ATTR_PROVIDER = "gen_ai.provider.name"
ATTR_REQUEST_MODEL = "gen_ai.request.model"
ATTR_TOOL_NAME = "gen_ai.tool.name"
ATTR_TOKEN_TYPE = "gen_ai.token.type"
ATTR_AGENT_NAME = "gen_ai.agent.name"
ATTR_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
ATTR_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
ATTR_ERROR_TYPE = "error.type"

# -- attribute keys: hypermind (metric labels keep them short for PromQL) -------------------------
ATTR_PROJECT = "project"
ATTR_SCENARIO = "scenario"
ATTR_MODEL = "model"
ATTR_TOOL = "tool"
ATTR_STATUS = "status"
ATTR_KIND = "kind"
ATTR_ERROR_CLASS = "error_class"
ATTR_FAILURE_CLASS = "failure_class"
ATTR_CLUSTER = "cluster"
ATTR_LABEL = "label"
ATTR_REASON = "reason"
ATTR_ESTIMATED = "estimated"
# Exemplar-only: measured, then removed from the series by the View (kept in filtered_attributes).
ATTR_RUN_ID = "hypermind.run_id"

# Span-only attributes (spans are not Prometheus series, so these may carry any value).
SPAN_ATTR_RUN_ID = "hypermind.run_id"
SPAN_ATTR_EVENT_ID = "hypermind.event_id"
SPAN_ATTR_PROJECT = "hypermind.project"
SPAN_ATTR_SCENARIO = "hypermind.scenario"
SPAN_ATTR_FAILURE_CLASS = "hypermind.failure.class"
SPAN_ATTR_CLUSTER = "hypermind.failure.cluster_id"
SPAN_ATTR_TOKENS_ESTIMATED = "hypermind.usage.estimated"
SPAN_ATTR_TAG_PREFIX = "hypermind.tag."
SPAN_ATTR_POLICY_NAME = "hypermind.guardrail.name"

# -- attribute values -----------------------------------------------------------------------------
OP_CHAT = "chat"
OP_EXECUTE_TOOL = "execute_tool"
OP_INVOKE_AGENT = "invoke_agent"
OP_RETRIEVAL = "retrieval"
# No semconv operation for a guardrail/policy check yet: namespaced (DESIGN §2).
OP_GUARDRAIL = "hypermind.guardrail"
# Event kind (DESIGN §2) → gen_ai.operation.name.
OPERATION_BY_KIND: dict[str, str] = {
    "run": OP_INVOKE_AGENT,
    "llm": OP_CHAT,
    "tool": OP_EXECUTE_TOOL,
    "retrieval": OP_RETRIEVAL,
    "policy": OP_GUARDRAIL,
}
TOKEN_INPUT = "input"
TOKEN_OUTPUT = "output"
# The semconv fallback for error.type / provider when nothing better is known.
OTHER_SEMCONV = "_OTHER"
UNKNOWN_ERROR_CLASS = "unknown"

# Provider (gen_ai.provider.name, required by semconv) when the event does not say: by model
# name prefix. Values are the semconv well-known provider names.
PROVIDER_BY_MODEL_PREFIX: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"), ("o1", "openai"), ("o3", "openai"), ("o4", "openai"), ("chatgpt", "openai"),
    ("text-embedding", "openai"), ("claude", "anthropic"), ("gemini", "gcp.gemini"),
    ("mistral", "mistral_ai"), ("mixtral", "mistral_ai"), ("codestral", "mistral_ai"),
    ("command", "cohere"), ("deepseek", "deepseek"), ("grok", "x_ai"), ("llama", "meta"),
)  # fmt: skip
# Event attributes that name the provider, in order of preference.
PROVIDER_ATTRIBUTE_KEYS: tuple[str, ...] = (ATTR_PROVIDER, "gen_ai.system", "provider")

# -- bucket boundaries ----------------------------------------------------------------------------
# GenAI semconv advice for gen_ai.client.operation.duration (seconds). The SDK default buckets are
# millisecond-shaped: a seconds histogram without these would put almost everything in one bucket.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
# GenAI semconv advice for gen_ai.client.token.usage.
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
# Whole agent runs last longer than one model call: the same doubling, shifted to 0.1 s … ~14 min.
RUN_DURATION_BUCKETS_S: tuple[float, ...] = (
    0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6, 819.2,
)  # fmt: skip

# -- label caps (DESIGN §4) ------------------------------------------------------------------------
# Values over a label's budget fold into OVERFLOW_VALUE; folds are counted in LABEL_OVERFLOW.
OVERFLOW_VALUE = "__other__"
# Longer values are cut to this many characters, ending in "~" + 8 hex of their SHA-256 so two
# long values sharing a prefix stay distinct.
MAX_LABEL_VALUE_CHARS = 128
BUDGET_PROJECT = "project"
BUDGET_MODEL = "model"
BUDGET_TOOL = "tool"
BUDGET_SCENARIO = "scenario"
BUDGET_ERROR_CLASS = "error_class"
BUDGET_ERROR_TYPE = "error_type"
BUDGET_CLUSTER = "cluster"
BUDGET_PROVIDER = "provider"
DEFAULT_LABEL_BUDGETS: dict[str, int] = {
    BUDGET_PROJECT: 50,
    BUDGET_MODEL: 50,
    BUDGET_TOOL: 200,
    BUDGET_SCENARIO: 100,
    BUDGET_ERROR_CLASS: 30,
    BUDGET_ERROR_TYPE: 30,
    BUDGET_CLUSTER: 100,
    BUDGET_PROVIDER: 20,
}
LABEL_BUDGETS_ENV = "HYPERMIND_LABEL_BUDGETS"
# The OTel SDK's own per-instrument limit on attribute sets, kept on as a backstop behind the
# budgets above. Past it the SDK folds into one series labelled otel_metric_overflow="true".
SDK_CARDINALITY_LIMIT = 2000
SDK_OVERFLOW_ATTR = "otel.metric.overflow"

# -- exemplars (OpenMetrics) ----------------------------------------------------------------------
EXEMPLAR_RUN_ID = "run_id"
EXEMPLAR_TRACE_ID = "trace_id"
# OpenMetrics: label names plus values of an exemplar ≤ 128 UTF-8 characters. run_id is cut to fit.
EXEMPLAR_MAX_CHARS = 128

# -- loss reasons (TELEMETRY_DROPPED) -------------------------------------------------------------
DROP_MALFORMED_EVENT = "malformed_event"
DROP_RECORD_ERROR = "record_error"
DROP_SPAN_ERROR = "span_error"
DROP_SPAN_EXPORT_FAILED = "span_export_failed"
DROP_SPAN_EXPORTER_ERROR = "span_exporter_error"
DROP_SPAN_QUEUE_FULL = "span_queue_full"
DROP_REASONS: tuple[str, ...] = (
    DROP_MALFORMED_EVENT, DROP_RECORD_ERROR, DROP_SPAN_ERROR,
    DROP_SPAN_EXPORT_FAILED, DROP_SPAN_EXPORTER_ERROR, DROP_SPAN_QUEUE_FULL,
)  # fmt: skip

# -- metrics ----------------------------------------------------------------------------------------
_PROM_UNIT = {UNIT_SECONDS: "seconds"}
_NOT_PROM = re.compile(r"[^a-zA-Z0-9_]")


def prom_label(attr: str) -> str:
    """The Prometheus label name of an OTel attribute key (dots and other characters → ``_``)."""
    return _NOT_PROM.sub("_", attr)


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its OTel identity and the Prometheus names PromQL uses."""

    name: str  # OTel instrument name
    kind: str  # "counter" | "histogram"
    unit: str  # UCUM, OTel side
    description: str
    labels: tuple[str, ...]  # OTel attribute keys kept on the series (the View's attribute_keys)
    buckets: tuple[float, ...] | None = None

    @property
    def prom_family(self) -> str:
        """The metric family name in the exposition (OpenMetrics: counters without ``_total``)."""
        base = prom_label(self.name)
        suffix = _PROM_UNIT.get(self.unit)
        return f"{base}_{suffix}" if suffix and not base.endswith(f"_{suffix}") else base

    @property
    def prom_unit(self) -> str:
        return _PROM_UNIT.get(self.unit, "")

    @property
    def prom(self) -> str:
        """The series name to query: ``…_total`` for counters, the histogram base otherwise."""
        return f"{self.prom_family}_total" if self.kind == "counter" else self.prom_family

    @property
    def prom_bucket(self) -> str:
        return f"{self.prom_family}_bucket"

    @property
    def prom_count(self) -> str:
        return f"{self.prom_family}_count"

    @property
    def prom_sum(self) -> str:
        return f"{self.prom_family}_sum"

    @property
    def prom_labels(self) -> tuple[str, ...]:
        return tuple(prom_label(k) for k in self.labels)


OPERATION_DURATION = MetricSpec(
    "gen_ai.client.operation.duration", "histogram", UNIT_SECONDS,
    "GenAI operation duration (chat, execute_tool, retrieval, invoke_agent), from stored run events.",
    (ATTR_OPERATION, ATTR_PROVIDER, ATTR_REQUEST_MODEL, ATTR_TOOL_NAME, ATTR_ERROR_TYPE, ATTR_PROJECT),
    DURATION_BUCKETS_S,
)  # fmt: skip
TOKEN_USAGE = MetricSpec(
    "gen_ai.client.token.usage", "histogram", UNIT_TOKEN,
    "Provider-reported tokens per model call (estimated token proxies are not included).",
    (ATTR_OPERATION, ATTR_PROVIDER, ATTR_REQUEST_MODEL, ATTR_TOKEN_TYPE, ATTR_PROJECT),
    TOKEN_BUCKETS,
)  # fmt: skip
AGENT_RUNS = MetricSpec(
    "hypermind.agent.runs", "counter", UNIT_RUN,
    "Finished agent runs by outcome.",
    (ATTR_PROJECT, ATTR_SCENARIO, ATTR_MODEL, ATTR_STATUS),
)  # fmt: skip
AGENT_RUN_DURATION = MetricSpec(
    "hypermind.agent.run.duration", "histogram", UNIT_SECONDS,
    "Wall-clock duration of finished agent runs.",
    (ATTR_PROJECT, ATTR_SCENARIO, ATTR_MODEL, ATTR_STATUS),
    RUN_DURATION_BUCKETS_S,
)  # fmt: skip
AGENT_RUN_TOKENS = MetricSpec(
    "hypermind.agent.run.tokens", "histogram", UNIT_TOKEN,
    "Tokens per finished agent run (estimated=true when derived from characters).",
    (ATTR_PROJECT, ATTR_SCENARIO, ATTR_MODEL, ATTR_TOKEN_TYPE, ATTR_ESTIMATED),
    TOKEN_BUCKETS,
)  # fmt: skip
TOOL_CALLS = MetricSpec(
    "hypermind.tool.calls", "counter", UNIT_CALL,
    "Tool calls by tool and outcome.",
    (ATTR_TOOL, ATTR_STATUS),
)  # fmt: skip
STEP_ERRORS = MetricSpec(
    "hypermind.step.errors", "counter", UNIT_ERROR,
    "Failed steps (llm, tool, retrieval, policy), once each, by kind and failure class.",
    (ATTR_KIND, ATTR_ERROR_CLASS),
)  # fmt: skip
POLICY_CHECKS = MetricSpec(
    "hypermind.policy.checks", "counter", UNIT_CHECK,
    "Guardrail/policy checks by outcome (status=error: the check failed or was violated).",
    (ATTR_PROJECT, ATTR_SCENARIO, ATTR_STATUS),
)  # fmt: skip
FAILURES = MetricSpec(
    "hypermind.agent.run.failures", "counter", UNIT_FAILURE,
    "Failed runs, once each, by the failure class and cluster of their root cause (failed steps: step errors).",
    (ATTR_FAILURE_CLASS, ATTR_CLUSTER),
)  # fmt: skip
LABEL_OVERFLOW = MetricSpec(
    "hypermind.label.overflow", "counter", UNIT_FOLD,
    "Label values folded into __other__ because the label's budget was full.",
    (ATTR_LABEL,),
)  # fmt: skip
TELEMETRY_DROPPED = MetricSpec(
    "hypermind.telemetry.dropped", "counter", UNIT_ITEM,
    "Telemetry lost (events not recorded, spans not exported) by reason.",
    (ATTR_REASON,),
)  # fmt: skip

METRICS: tuple[MetricSpec, ...] = (
    OPERATION_DURATION, TOKEN_USAGE, AGENT_RUNS, AGENT_RUN_DURATION, AGENT_RUN_TOKENS,
    TOOL_CALLS, STEP_ERRORS, POLICY_CHECKS, FAILURES, LABEL_OVERFLOW, TELEMETRY_DROPPED,
)  # fmt: skip
METRICS_BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}

# Prometheus-side names for PromQL (rules, dashboards, tests import these, never retype them).
PROM_OPERATION_DURATION = OPERATION_DURATION.prom
PROM_OPERATION_DURATION_BUCKET = OPERATION_DURATION.prom_bucket
PROM_OPERATION_DURATION_COUNT = OPERATION_DURATION.prom_count
PROM_TOKEN_USAGE = TOKEN_USAGE.prom
PROM_AGENT_RUNS = AGENT_RUNS.prom
PROM_AGENT_RUN_DURATION = AGENT_RUN_DURATION.prom
PROM_AGENT_RUN_DURATION_BUCKET = AGENT_RUN_DURATION.prom_bucket
PROM_AGENT_RUN_DURATION_COUNT = AGENT_RUN_DURATION.prom_count
PROM_AGENT_RUN_DURATION_SUM = AGENT_RUN_DURATION.prom_sum
PROM_AGENT_RUN_TOKENS = AGENT_RUN_TOKENS.prom
PROM_AGENT_RUN_TOKENS_SUM = AGENT_RUN_TOKENS.prom_sum
PROM_TOOL_CALLS = TOOL_CALLS.prom
PROM_STEP_ERRORS = STEP_ERRORS.prom
PROM_POLICY_CHECKS = POLICY_CHECKS.prom
PROM_FAILURES = FAILURES.prom
# The same metric under its descriptive name (hypermind_agent_run_failures_total).
AGENT_RUN_FAILURES = FAILURES
PROM_AGENT_RUN_FAILURES = FAILURES.prom
PROM_LABEL_OVERFLOW = LABEL_OVERFLOW.prom
PROM_TELEMETRY_DROPPED = TELEMETRY_DROPPED.prom
# Prometheus' own series of pending/firing alerts (one per alert, labels alertname, alertstate, …).
PROM_ALERTS = "ALERTS"
PROM_ALERTSTATE_LABEL = "alertstate"

# -- Prometheus rules and Alertmanager routing (hypermindlabs.generate; docs/alerting.md) --------
# Recording-rule names follow Prometheus' level:metric:operations convention; the window is part
# of the name (``rate5m``), so the fast variant the end-to-end test generates has honest names.
PROM_JOB = "hypermind"  # the scrape job of the app in the generated prometheus.yml
LABEL_JOB = "job"
LABEL_INSTANCE = "instance"
LABEL_LE = "le"
PROM_SDK_OVERFLOW_LABEL = prom_label(SDK_OVERFLOW_ATTR)  # otel_metric_overflow="true": SDK backstop hit
RULE_GROUP_RECORDING = "hypermind.recording"
RULE_GROUP_SLO = "hypermind.slo"
RULE_GROUP_ALERTS = "hypermind.alerts"
RULES_FILE_RECORDING = "recording.rules.yml"
RULES_FILE_ALERTS = "alerts.rules.yml"


def record_runs_rate(window: str) -> str:
    """Runs per second by job, project, scenario, model and status."""
    return f"hypermind:agent_runs:rate{window}"


def record_run_error_ratio(window: str) -> str:
    """Failed share of runs by job, project, scenario and model (0 when a slice has no failure)."""
    return f"hypermind:agent_runs_error:ratio_rate{window}"


def record_slo_error_ratio(window: str) -> str:
    """Failed share of runs by job and project: the SLO's error ratio (burn rate × error budget)."""
    return f"hypermind_project:agent_runs_error:ratio_rate{window}"


def record_run_duration_quantile(percent: int, window: str) -> str:
    """A run-duration quantile (seconds) by job, project, scenario and model, from the buckets."""
    return f"hypermind:agent_run_duration_seconds:p{percent}_{window}"


def record_operation_quantile(percent: int, window: str) -> str:
    """An operation-duration quantile (seconds) by operation, model, tool and project."""
    return f"hypermind:gen_ai_client_operation_duration_seconds:p{percent}_{window}"


def record_failures_rate(window: str) -> str:
    """Failures per second by failure class and cluster."""
    return f"hypermind:failures:rate{window}"


RECORD_RUNS_RATE_5M = record_runs_rate("5m")
RECORD_RUN_ERROR_RATIO_5M = record_run_error_ratio("5m")
RECORD_OPERATION_P95_5M = record_operation_quantile(95, "5m")
RECORD_RUN_P95_5M = record_run_duration_quantile(95, "5m")
ALERT_LABEL_OVERFLOW = "HypermindLabelOverflow"
ALERT_TELEMETRY_DROPPED = "HypermindTelemetryDropped"
ALERT_SERIES_OVERFLOW = "HypermindExportedSeriesOverflow"
ALERT_ERROR_RATE_REGRESSION = "HypermindErrorRateRegression"
ALERT_LATENCY_REGRESSION = "HypermindLatencyRegression"
ALERT_SLO_BURN = "HypermindRunSLOBurnRate"
ALERT_FAILURE_CLUSTER_NEW = "HypermindFailureClusterNew"
ALERT_FAILURE_CLUSTER_SURGE = "HypermindFailureClusterSurge"
ALERT_TARGET_DOWN = "HypermindTargetDown"
# Labels the generated alerts carry (Alertmanager routes and inhibits on them).
LABEL_SEVERITY = "severity"
SEVERITY_PAGE = "page"
SEVERITY_TICKET = "ticket"
SEVERITY_INFO = "info"
SEVERITIES: tuple[str, ...] = (SEVERITY_PAGE, SEVERITY_TICKET, SEVERITY_INFO)
LABEL_BASELINE = "baseline"  # the offset a regression alert compares against: "1d", "7d"
LABEL_TIER = "tier"  # SLO burn-rate tier, "1" fastest … "4" slowest; a faster tier inhibits slower ones
LABEL_LONG_WINDOW = "long_window"
LABEL_SHORT_WINDOW = "short_window"
ANNOTATION_SUMMARY = "summary"
ANNOTATION_DESCRIPTION = "description"
ANNOTATION_RUNBOOK_URL = "runbook_url"
ANNOTATION_RUNS_URL = "runs_url"  # absolute link to the web UI's run list (page form /runs?…)
AM_RECEIVER_DEFAULT = "hypermind-webhook"
AM_RECEIVER_PAGE = "hypermind-page"
AM_RECEIVER_TICKET = "hypermind-ticket"
ALERTS_API_PATH = "/api/v1/alerts"  # the app's Alertmanager webhook receiver
DASHBOARD_OVERVIEW_UID = "hypermind-overview"
DASHBOARD_TOOLS_UID = "hypermind-tools"
DASHBOARD_REGRESSIONS_UID = "hypermind-regressions"
DASHBOARD_TRIAGE_UID = "hypermind-triage"
# Panels of the generated Grafana dashboards that the web UI embeds (``d-solo`` iframes) when
# HYPERMIND_GRAFANA_URL is set: (dashboard uid, panel id, title). The dashboard generator gives these
# panels exactly these ids; the web UI reads this tuple, so the two can never drift apart.
GRAFANA_EMBED_PANELS: tuple[tuple[str, int, str], ...] = (
    (DASHBOARD_OVERVIEW_UID, 1, "Run rate by outcome"),
    (DASHBOARD_OVERVIEW_UID, 3, "Run latency p50 / p95 / p99"),
    (DASHBOARD_REGRESSIONS_UID, 1, "Failure rate vs 1d and 7d baseline"),
)
# Grafana side (DESIGN §8): the provisioned Prometheus datasource's uid, the dashboards' template
# variables (the web UI's d-solo URLs carry var-<name> for the first four), the textbox variable
# holding the web UI's base URL, and the period the error budget is counted over (the objective is
# Settings.slo_objective, shared with the generated burn-rate alerts).
GRAFANA_DATASOURCE_UID = "hypermind-prometheus"
GRAFANA_VAR_DATASOURCE = "datasource"
GRAFANA_VAR_PROJECT = "project"
GRAFANA_VAR_MODEL = "model"
GRAFANA_VAR_TOOL = "tool"
GRAFANA_VAR_SCENARIO = "scenario"
GRAFANA_VAR_HYPERMIND_URL = "hypermind_url"
GRAFANA_FOLDER = "hypermind-obs"
SLO_BUDGET_WINDOW = "30d"
