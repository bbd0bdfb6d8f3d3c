"""Prometheus recording and alerting rules for hypermind-obs, as pure functions (DESIGN §7).

Every window, offset and threshold is a field of :class:`RuleParams`, so the committed files (the
defaults) and the fast variant the end-to-end test runs against real binaries come from the same
code. Names come from :mod:`hypermindlabs.conventions`; ``docs/alerting.md`` explains each rule.

    >>> params = RuleParams(public_url="http://127.0.0.1:8080")
    >>> [r["record"] for r in recording_rules(params)][:2]
    ['hypermind:agent_runs:rate5m', 'hypermind:agent_runs_error:ratio_rate5m']
    >>> sorted({r["alert"] for r in alert_rules(params)})[:2]
    ['HypermindErrorRateRegression', 'HypermindExportedSeriesOverflow']

The app exports the store's totals from every instance (DESIGN §4: N workers serve identical
numbers), so each rule first takes ``max without (instance)`` and only then sums over labels:
a sum across instances would count every run once per worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hypermindlabs import conventions as c

__all__ = ["BurnTier", "RuleParams", "DEFAULT_BURN_TIERS", "recording_rules", "slo_rules", "alert_rules",
           "rule_groups", "duration_seconds"]  # fmt: skip

SLICE: tuple[str, ...] = (c.LABEL_JOB, c.ATTR_PROJECT, c.ATTR_SCENARIO, c.ATTR_MODEL)
PROJECT: tuple[str, ...] = (c.LABEL_JOB, c.ATTR_PROJECT)
CLUSTER: tuple[str, ...] = (c.LABEL_JOB, c.ATTR_FAILURE_CLASS, c.ATTR_CLUSTER)
OPERATION: tuple[str, ...] = (
    c.LABEL_JOB, c.prom_label(c.ATTR_OPERATION), c.prom_label(c.ATTR_REQUEST_MODEL),
    c.prom_label(c.ATTR_TOOL_NAME), c.ATTR_PROJECT,
)  # fmt: skip
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def duration_seconds(d: str) -> int:
    """Seconds in a Prometheus duration of d/h/m/s parts.

    >>> duration_seconds("1h"), duration_seconds("3d"), duration_seconds("1m30s")
    (3600, 259200, 90)
    """
    m = _DURATION.fullmatch(d)
    if not d or m is None:
        raise ValueError(f"not a duration of d/h/m/s parts: {d!r}")
    days, hours, minutes, seconds = (int(x or 0) for x in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


@dataclass(frozen=True)
class BurnTier:
    """One multi-window burn-rate alert (Google SRE workbook, ch. 5): both windows must burn."""

    tier: str
    long_window: str
    short_window: str
    factor: float
    severity: str
    for_: str | None = None


DEFAULT_BURN_TIERS: tuple[BurnTier, ...] = (
    BurnTier("1", "1h", "5m", 14.4, c.SEVERITY_PAGE),  # 2 % of a 30-day budget in 1 h
    BurnTier("2", "6h", "30m", 6.0, c.SEVERITY_PAGE),  # 5 % in 6 h
    BurnTier("3", "1d", "2h", 3.0, c.SEVERITY_TICKET),  # 10 % in 1 d
    BurnTier("4", "3d", "6h", 1.0, c.SEVERITY_TICKET),  # 10 % in 3 d
)


@dataclass(frozen=True)
class RuleParams:
    """Windows, offsets and thresholds of the generated rules; docs/alerting.md says how to tune them."""

    public_url: str  # Settings.public_url: base of the runs_url links
    runbook_url: str = ""  # base of the runbook links; default: the app's /docs/alerting page
    job: str = c.PROM_JOB
    interval: str | None = None  # group evaluation interval; None: Prometheus' global one
    dashboard_window: str = "5m"
    quantiles: tuple[int, ...] = (50, 95, 99)
    # Failure-rate and latency regression against the same window `offset` earlier.
    regression_window: str = "1h"
    regression_offsets: tuple[str, ...] = ("1d", "7d")
    regression_for: str = "10m"
    min_runs: int = 30  # in the window, now and at the offset: the minimum-traffic guard
    error_rate_min_ratio: float = 2.0
    error_rate_min_increase: float = 0.05
    latency_percent: int = 95
    latency_min_ratio: float = 1.5
    latency_min_increase_s: float = 0.5
    # SLO on run success, by project.
    slo_objective: float = 0.95
    burn_tiers: tuple[BurnTier, ...] = DEFAULT_BURN_TIERS
    # Failure clusters (hypermind_agent_run_failures_total).
    cluster_window: str = "1h"
    cluster_offset: str = "1d"
    cluster_min_failures: int = 10
    cluster_surge_ratio: float = 3.0
    cluster_for: str = "5m"
    # Label overflow, telemetry loss, target down.
    loss_window: str = "15m"
    target_down_for: str = "2m"
    extra_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.slo_objective < 1:
            raise ValueError(f"slo_objective must be between 0 and 1 (exclusive), got {self.slo_objective}")
        for d in (self.dashboard_window, self.regression_window, *self.regression_offsets, self.cluster_window,
                  self.cluster_offset, self.loss_window):  # fmt: skip
            duration_seconds(d)

    @property
    def runbook(self) -> str:
        return self.runbook_url or f"{self.public_url.rstrip('/')}/docs/alerting"


# -- PromQL building blocks ---------------------------------------------------------------------------


def _by(labels: tuple[str, ...]) -> str:
    return ", ".join(labels)


def _dedup(expr: str) -> str:
    return f"max without ({c.LABEL_INSTANCE}) ({expr})"


def _num(x: float) -> str:
    """A threshold as PromQL reads it: no float noise (14.4 × 0.05 → 0.72, not 0.7200000000000001)."""
    return f"{x:.12g}"


def _ratio(errors: str, total: str) -> str:
    # A slice without a failure has no status="error" series; `or 0 * total` makes its ratio 0, not absent.
    return f"(\n  {errors}\n  or\n  0 * {total}\n)\n/\n{total}\n"


def recording_rules(p: RuleParams) -> list[dict[str, Any]]:
    """Rates, error ratios and quantiles by the capped labels (group ``hypermind.recording``)."""
    rules: list[dict[str, Any]] = []
    for w in dict.fromkeys((p.dashboard_window, p.regression_window)):
        runs = c.record_runs_rate(w)
        rules.append({"record": runs, "expr": f"sum by ({_by(SLICE)}, {c.ATTR_STATUS}) (\n  "
                      + _dedup(f"rate({c.PROM_AGENT_RUNS}[{w}])") + "\n)\n"})  # fmt: skip
        errors = f'sum by ({_by(SLICE)}) ({runs}{{{c.ATTR_STATUS}="error"}})'
        total = f"sum by ({_by(SLICE)}) ({runs})"
        rules.append({"record": c.record_run_error_ratio(w), "expr": _ratio(errors, total)})
    quantiles = [(q, p.dashboard_window) for q in p.quantiles]
    if (p.latency_percent, p.regression_window) not in quantiles:
        quantiles.append((p.latency_percent, p.regression_window))
    for q, w in quantiles:
        buckets = _dedup(f"rate({c.PROM_AGENT_RUN_DURATION_BUCKET}[{w}])")
        rules.append({"record": c.record_run_duration_quantile(q, w),
                      "expr": f"histogram_quantile({_num(q / 100)}, sum by ({_by(SLICE)}, {c.LABEL_LE}) (\n  "
                      f"{buckets}\n))\n"})  # fmt: skip
    buckets = _dedup(f"rate({c.PROM_OPERATION_DURATION_BUCKET}[{p.dashboard_window}])")
    rules.append({"record": c.record_operation_quantile(p.latency_percent, p.dashboard_window),
                  "expr": f"histogram_quantile({_num(p.latency_percent / 100)}, sum by ({_by(OPERATION)}, "
                  f"{c.LABEL_LE}) (\n  {buckets}\n))\n"})  # fmt: skip
    rules.append({"record": c.record_failures_rate(p.cluster_window),
                  "expr": f"sum by ({_by(CLUSTER)}) (\n  " + _dedup(f"rate({c.PROM_FAILURES}[{p.cluster_window}])")
                  + "\n)\n"})  # fmt: skip
    return rules


def _slo_windows(p: RuleParams) -> list[str]:
    ws = {w for t in p.burn_tiers for w in (t.long_window, t.short_window)}
    return sorted(ws, key=duration_seconds)


def slo_rules(p: RuleParams) -> list[dict[str, Any]]:
    """The SLO's error ratio by project over every burn-tier window (group ``hypermind.slo``)."""
    rules = []
    for w in _slo_windows(p):
        failed = f'rate({c.PROM_AGENT_RUNS}{{{c.ATTR_STATUS}="error"}}[{w}])'
        errors = f"sum by ({_by(PROJECT)}) ({_dedup(failed)})"
        total = f"sum by ({_by(PROJECT)}) ({_dedup(f'rate({c.PROM_AGENT_RUNS}[{w}])')})"
        rules.append({"record": c.record_slo_error_ratio(w), "expr": _ratio(errors, total)})
    return rules


# -- annotations --------------------------------------------------------------------------------------


def _runs_url(p: RuleParams, labels: tuple[str, ...], since: str, *, failing: bool = False) -> str:
    """The web UI's run list for the alert's labels (CONTRACTS: page form ``/runs?…``)."""
    fixed = ("status=error&" if failing else "") + f"from=now-{since}"
    parts = "".join(f"{{{{ with $labels.{label} }}}}&{label}={{{{ . | urlquery }}}}{{{{ end }}}}" for label in labels)
    return f"{p.public_url.rstrip('/')}/runs?{fixed}{parts}"


def _annotations(p: RuleParams, alert: str, summary: str, description: str, runs_url: str) -> dict[str, str]:
    return {
        c.ANNOTATION_SUMMARY: summary,
        c.ANNOTATION_DESCRIPTION: description,
        c.ANNOTATION_RUNBOOK_URL: f"{p.runbook}#{alert.lower()}",
        c.ANNOTATION_RUNS_URL: runs_url,
    }


def _baseline_query(record: str, labels: tuple[str, ...], offset: str, fmt: str) -> str:
    """A template fragment printing ``record`` for the alert's labels ``offset`` ago."""
    matchers = ",".join(f"{label}=%q" for label in labels)
    args = " ".join(f"$labels.{label}" for label in labels)
    return (f'{{{{ with printf "{record}{{{matchers}}} offset {offset}" {args} | query }}}}'
            f"{{{{ . | first | value | {fmt} }}}}{{{{ else }}}}no data{{{{ end }}}}")  # fmt: skip


_FOUR_DIGITS = 'printf "%.4f"'
_SLICE_TEXT = "{{ $labels.model }} × {{ $labels.scenario }} in project {{ $labels.project }}"


def _rule(p: RuleParams, alert: str, expr: str, labels: dict[str, str], annotations: dict[str, str],
          for_: str | None) -> dict[str, Any]:  # fmt: skip
    rule: dict[str, Any] = {"alert": alert, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {**labels, **p.extra_labels}
    rule["annotations"] = annotations
    return rule


def _regressions(p: RuleParams) -> list[dict[str, Any]]:
    w = p.regression_window
    secs = duration_seconds(w)
    on = f"on ({_by(SLICE)})"
    runs = f"sum without ({c.ATTR_STATUS}) ({c.record_runs_rate(w)})"

    def runs_at(offset: str) -> str:
        return f"sum without ({c.ATTR_STATUS}) ({c.record_runs_rate(w)} offset {offset})"

    ratio = c.record_run_error_ratio(w)
    quantile = c.record_run_duration_quantile(p.latency_percent, w)
    rates: list[dict[str, Any]] = []
    latencies: list[dict[str, Any]] = []
    for o in p.regression_offsets:
        # PromQL's offset modifies a selector, not an expression: the guard sums the shifted series.
        guard = (f"and {on}\n  {runs} * {secs} >= {p.min_runs}\nand {on}\n  "
                 f"{runs_at(o)} * {secs} >= {p.min_runs}\n")  # fmt: skip
        expr = (f"(\n  {ratio}\n    > {on} ({ratio} offset {o}) * {_num(p.error_rate_min_ratio)}\n  and\n  {ratio}\n"
                f"    - {on} ({ratio} offset {o}) >= {_num(p.error_rate_min_increase)}\n)\n{guard}")  # fmt: skip
        base = _baseline_query(ratio, SLICE, o, "humanizePercentage")
        rates.append(_rule(p, c.ALERT_ERROR_RATE_REGRESSION, expr,
                         {c.LABEL_SEVERITY: c.SEVERITY_PAGE, c.LABEL_BASELINE: o},
                         _annotations(p, c.ALERT_ERROR_RATE_REGRESSION,
                                      f"Failure rate of {_SLICE_TEXT} rose against {o} ago",
                                      f"{{{{ $value | humanizePercentage }}}} of the runs of {_SLICE_TEXT} failed over "
                                      f"the last {w}, against {base} over the same {w} {o} earlier "
                                      f"(alerts at ≥ {_num(p.error_rate_min_ratio)}× and "
                                      f"≥ +{_num(p.error_rate_min_increase * 100)} points, "
                                      f"with ≥ {p.min_runs} runs in both windows).",
                                      _runs_url(p, SLICE[1:], w, failing=True)),
                         p.regression_for))  # fmt: skip
        expr = (f"(\n  {quantile}\n    > {on} ({quantile} offset {o}) * {_num(p.latency_min_ratio)}\n  and\n"
                f"  {quantile}\n    - {on} ({quantile} offset {o}) >= {_num(p.latency_min_increase_s)}\n)\n{guard}")
        base = _baseline_query(quantile, SLICE, o, "humanizeDuration")
        pq = f"p{p.latency_percent}"
        latencies.append(_rule(p, c.ALERT_LATENCY_REGRESSION, expr,
                         {c.LABEL_SEVERITY: c.SEVERITY_TICKET, c.LABEL_BASELINE: o},
                         _annotations(p, c.ALERT_LATENCY_REGRESSION,
                                      f"{pq} run latency of {_SLICE_TEXT} rose against {o} ago",
                                      f"The {pq} duration of the runs of {_SLICE_TEXT} was {{{{ $value | "
                                      f"humanizeDuration }}}} over the last {w}, against {base} over the same {w} "
                                      f"{o} earlier (alerts at ≥ {_num(p.latency_min_ratio)}× and "
                                      f"≥ +{_num(p.latency_min_increase_s)}s, with ≥ {p.min_runs} runs in both "
                                      "windows; quantiles from histogram buckets are 5–25 % off, the API's within "
                                      "1 %).",
                                      _runs_url(p, SLICE[1:], w)),
                         p.regression_for))  # fmt: skip
    return [*rates, *latencies]


def _burn_rates(p: RuleParams) -> list[dict[str, Any]]:
    budget = 1 - p.slo_objective
    out = []
    for t in p.burn_tiers:
        threshold = _num(t.factor * budget)
        long_r, short_r = c.record_slo_error_ratio(t.long_window), c.record_slo_error_ratio(t.short_window)
        expr = f"{long_r} > {threshold}\nand\n{short_r} > {threshold}\n"
        objective = _num(p.slo_objective * 100)
        out.append(_rule(p, c.ALERT_SLO_BURN, expr,
                         {c.LABEL_SEVERITY: t.severity, c.LABEL_TIER: t.tier, c.LABEL_LONG_WINDOW: t.long_window,
                          c.LABEL_SHORT_WINDOW: t.short_window},
                         _annotations(p, c.ALERT_SLO_BURN,
                                      f"Project {{{{ $labels.project }}}} burns its {objective} % run-success "
                                      f"error budget {_num(t.factor)}× too fast",
                                      f"{{{{ $value | humanizePercentage }}}} of the runs of project "
                                      f"{{{{ $labels.project }}}} failed over the last {t.long_window}, and more than "
                                      f"{_num(t.factor * budget * 100)} % over the last {t.short_window} too: at "
                                      f"{_num(t.factor)}× the {_num(budget * 100)} % budget of a {objective} % "
                                      f"objective (tier {t.tier}).",
                                      _runs_url(p, PROJECT[1:], t.long_window, failing=True)),
                         t.for_))  # fmt: skip
    return out


def _clusters(p: RuleParams) -> list[dict[str, Any]]:
    w, o = p.cluster_window, p.cluster_offset
    secs = duration_seconds(w)
    rate = c.record_failures_rate(w)
    on = f"on ({_by(CLUSTER)})"
    seen = _dedup(f"{c.PROM_FAILURES} offset {o}")
    watched = f'count by ({c.LABEL_JOB}) (up{{{c.LABEL_JOB}="{p.job}"}} offset {o})'
    url = _runs_url(p, (c.ATTR_CLUSTER,), w, failing=True)
    what = "{{ $labels.failure_class }} cluster {{ $labels.cluster }}"
    new = (f"{rate} * {secs} >= {p.cluster_min_failures}\nunless {on}\n  {seen}\n"
           f"and on ({c.LABEL_JOB})\n  {watched}\n")  # fmt: skip
    surge = (f"{rate} * {secs} >= {p.cluster_min_failures}\nand {on}\n  "
             f"{rate} > {on} ({rate} offset {o}) * {_num(p.cluster_surge_ratio)}\n")  # fmt: skip
    return [
        _rule(p, c.ALERT_FAILURE_CLUSTER_NEW, new, {c.LABEL_SEVERITY: c.SEVERITY_TICKET},
              _annotations(p, c.ALERT_FAILURE_CLUSTER_NEW, f"New failure cluster: {what}",
                           f'{{{{ $value | printf "%.0f" }}}} failures in the last {w} fell in {what}, which had '
                           f"no failure {o} ago (alerts at ≥ {p.cluster_min_failures}).", url),
              p.cluster_for),
        _rule(p, c.ALERT_FAILURE_CLUSTER_SURGE, surge, {c.LABEL_SEVERITY: c.SEVERITY_TICKET},
              _annotations(p, c.ALERT_FAILURE_CLUSTER_SURGE, f"Failure cluster surging: {what}",
                           f'{{{{ $value | printf "%.0f" }}}} failures in the last {w} fell in {what}, more than '
                           f"{_num(p.cluster_surge_ratio)}× its rate {o} earlier "
                           f"({_baseline_query(rate, CLUSTER, o, _FOUR_DIGITS)}/s; alerts at "
                           f"≥ {p.cluster_min_failures} failures).", url),
              p.cluster_for),
    ]  # fmt: skip


def _pipeline(p: RuleParams) -> list[dict[str, Any]]:
    lw = p.loss_window
    job = f'{c.LABEL_JOB}="{p.job}"'
    recent = _runs_url(p, (), lw)
    overflow = f'sum by ({c.LABEL_JOB}, {c.ATTR_LABEL}) ({_dedup(f"increase({c.PROM_LABEL_OVERFLOW}[{lw}])")}) > 0\n'
    dropped = (f'sum by ({c.LABEL_JOB}, {c.ATTR_REASON}) ({_dedup(f"increase({c.PROM_TELEMETRY_DROPPED}[{lw}])")})'
               " > 0\n")  # fmt: skip
    series = f'count by ({c.LABEL_JOB}) ({{{c.PROM_SDK_OVERFLOW_LABEL}="true", {job}}}) > 0\n'
    return [
        _rule(p, c.ALERT_LABEL_OVERFLOW, overflow, {c.LABEL_SEVERITY: c.SEVERITY_TICKET},
              _annotations(p, c.ALERT_LABEL_OVERFLOW, "Label {{ $labels.label }} is over its budget",
                           f'{{{{ $value | printf "%.0f" }}}} values of the {{{{ $labels.label }}}} label were folded '
                           f"into {c.OVERFLOW_VALUE} in the last {lw}: series under that label now merge "
                           f"unrelated values (raise its budget in {c.LABEL_BUDGETS_ENV}).", recent), None),
        _rule(p, c.ALERT_TELEMETRY_DROPPED, dropped, {c.LABEL_SEVERITY: c.SEVERITY_TICKET},
              _annotations(p, c.ALERT_TELEMETRY_DROPPED, "Telemetry lost: {{ $labels.reason }}",
                           f'{{{{ $value | printf "%.0f" }}}} telemetry items were lost in the last {lw} '
                           "(reason {{ $labels.reason }}): /metrics or the exported spans miss what the store "
                           "holds.", recent), None),
        _rule(p, c.ALERT_SERIES_OVERFLOW, series, {c.LABEL_SEVERITY: c.SEVERITY_TICKET},
              _annotations(p, c.ALERT_SERIES_OVERFLOW, "Exported series folded by the OpenTelemetry SDK limit",
                           f"{{{{ $value }}}} metrics on {{{{ $labels.job }}}} carry "
                           f'{c.PROM_SDK_OVERFLOW_LABEL}="true": past {c.SDK_CARDINALITY_LIMIT} label sets the SDK '
                           "merges new series into one, so per-slice numbers are lost.", recent), None),
        _rule(p, c.ALERT_TARGET_DOWN, f"up{{{job}}} == 0\n", {c.LABEL_SEVERITY: c.SEVERITY_PAGE},
              _annotations(p, c.ALERT_TARGET_DOWN, "hypermind-obs target {{ $labels.instance }} is down",
                           "Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for "
                           f"{p.target_down_for}: no metrics, no regression or SLO alerts while it lasts.", recent),
              p.target_down_for),
    ]  # fmt: skip


def alert_rules(p: RuleParams) -> list[dict[str, Any]]:
    """Every alert (group ``hypermind.alerts``), in the order docs/alerting.md lists them."""
    return [*_regressions(p), *_burn_rates(p), *_clusters(p), *_pipeline(p)]


def rule_groups(p: RuleParams) -> dict[str, dict[str, Any]]:
    """File name → rule file content (``groups:``), the recording and SLO groups before the alerts."""

    def group(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        g: dict[str, Any] = {"name": name}
        if p.interval:
            g["interval"] = p.interval
        g["rules"] = rules
        return g

    return {
        c.RULES_FILE_RECORDING: {"groups": [group(c.RULE_GROUP_RECORDING, recording_rules(p)),
                                            group(c.RULE_GROUP_SLO, slo_rules(p))]},
        c.RULES_FILE_ALERTS: {"groups": [group(c.RULE_GROUP_ALERTS, alert_rules(p))]},
    }  # fmt: skip
