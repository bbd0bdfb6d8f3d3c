"""Alertmanager routing and the Prometheus server config for hypermind-obs, as pure functions.

Routes by severity (page / ticket; anything else goes to the default receiver), groups one
notification per alert and slice, and inhibits what a louder alert already explains: a down
app target silences the regressions it causes, a faster SLO burn tier silences the slower ones.
Every receiver posts to the app's ``POST /api/v1/alerts`` (the web UI shows what fires); the
PagerDuty and Slack receivers are written out as comments to uncomment.

    >>> cfg = alertmanager_config(AlertmanagerParams(app_url="http://127.0.0.1:8080"))
    >>> "url: http://127.0.0.1:8080/api/v1/alerts" in cfg
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypermindlabs import conventions as c
from hypermindlabs.generate._yaml import dump
from hypermindlabs.generate.rules import DEFAULT_BURN_TIERS, BurnTier

__all__ = ["AlertmanagerParams", "PrometheusParams", "alertmanager_config", "alertmanager_dict", "prometheus_config",
           "inhibit_rules", "REGRESSION_ALERTS"]  # fmt: skip

# What a down app target makes meaningless: every alert computed from the app's run metrics.
REGRESSION_ALERTS: tuple[str, ...] = (
    c.ALERT_ERROR_RATE_REGRESSION, c.ALERT_LATENCY_REGRESSION, c.ALERT_SLO_BURN,
    c.ALERT_FAILURE_CLUSTER_NEW, c.ALERT_FAILURE_CLUSTER_SURGE,
)  # fmt: skip
GROUP_BY: tuple[str, ...] = (
    "alertname", c.LABEL_JOB, c.ATTR_PROJECT, c.ATTR_SCENARIO, c.ATTR_MODEL, c.ATTR_CLUSTER, c.ATTR_LABEL,
    c.ATTR_REASON,
)  # fmt: skip


@dataclass(frozen=True)
class AlertmanagerParams:
    app_url: str  # where Alertmanager reaches the app (its webhook receiver)
    credentials_file: str | None = None  # a file holding HYPERMIND_API_TOKEN, when the API has one
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval_page: str = "1h"
    repeat_interval_ticket: str = "12h"
    resolve_timeout: str = "5m"
    burn_tiers: tuple[BurnTier, ...] = DEFAULT_BURN_TIERS


def _webhook(p: AlertmanagerParams) -> dict[str, Any]:
    hook: dict[str, Any] = {"url": f"{p.app_url.rstrip('/')}{c.ALERTS_API_PATH}", "send_resolved": True}
    if p.credentials_file:
        hook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": p.credentials_file}}
    return hook


def _matcher(label: str, op: str, value: str) -> str:
    return f'{label}{op}"{value}"'


def inhibit_rules(p: AlertmanagerParams) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [{
        "source_matchers": [_matcher("alertname", "=", c.ALERT_TARGET_DOWN)],
        "target_matchers": [_matcher("alertname", "=~", "|".join(REGRESSION_ALERTS))],
        "equal": [c.LABEL_JOB],
    }]  # fmt: skip
    tiers = sorted(p.burn_tiers, key=lambda t: t.tier)
    for i, t in enumerate(tiers[:-1]):
        slower = "|".join(s.tier for s in tiers[i + 1 :])
        rules.append({
            "source_matchers": [_matcher("alertname", "=", c.ALERT_SLO_BURN), _matcher(c.LABEL_TIER, "=", t.tier)],
            "target_matchers": [_matcher("alertname", "=", c.ALERT_SLO_BURN), _matcher(c.LABEL_TIER, "=~", slower)],
            "equal": [c.LABEL_JOB, c.ATTR_PROJECT],
        })  # fmt: skip
    return rules


def alertmanager_dict(p: AlertmanagerParams) -> dict[str, Any]:
    return {
        "global": {"resolve_timeout": p.resolve_timeout},
        "route": {
            "receiver": c.AM_RECEIVER_DEFAULT,
            "group_by": list(GROUP_BY),
            "group_wait": p.group_wait,
            "group_interval": p.group_interval,
            "repeat_interval": p.repeat_interval_ticket,
            "routes": [
                {"receiver": c.AM_RECEIVER_PAGE, "matchers": [_matcher(c.LABEL_SEVERITY, "=", c.SEVERITY_PAGE)],
                 "repeat_interval": p.repeat_interval_page},
                {"receiver": c.AM_RECEIVER_TICKET, "matchers": [_matcher(c.LABEL_SEVERITY, "=", c.SEVERITY_TICKET)],
                 "repeat_interval": p.repeat_interval_ticket},
            ],
        },
        "inhibit_rules": inhibit_rules(p),
        "receivers": [
            {"name": c.AM_RECEIVER_DEFAULT, "webhook_configs": [_webhook(p)]},
            {"name": c.AM_RECEIVER_PAGE, "webhook_configs": [_webhook(p)]},
            {"name": c.AM_RECEIVER_TICKET, "webhook_configs": [_webhook(p)]},
        ],
    }  # fmt: skip


# Inserted under the page / ticket receivers: a pager and a chat channel, ready to uncomment.
_PAGERDUTY = """\
  # Page a human too: uncomment, and put the PagerDuty Events API v2 integration key in the file.
  # pagerduty_configs:
  # - routing_key_file: /etc/prometheus/pagerduty.key
  #   send_resolved: true
  #   description: '{{ .CommonAnnotations.summary }}'
  #   links:
  #   - href: '{{ .CommonAnnotations.runs_url }}'
  #     text: failing runs
  #   - href: '{{ .CommonAnnotations.runbook_url }}'
  #     text: runbook
"""
_SLACK = """\
  # Post tickets to a Slack channel too: uncomment, and put the incoming-webhook URL in the file.
  # slack_configs:
  # - api_url_file: /etc/prometheus/slack.url
  #   channel: '#agent-alerts'
  #   send_resolved: true
  #   title: '{{ .CommonAnnotations.summary }}'
  #   text: >-
  #     {{ .CommonAnnotations.description }} <{{ .CommonAnnotations.runs_url }}|runs>
  #     <{{ .CommonAnnotations.runbook_url }}|runbook>
"""


def alertmanager_config(p: AlertmanagerParams, header: str = "") -> str:
    """The alertmanager.yml text, commented PagerDuty and Slack receivers included."""
    text = dump(alertmanager_dict(p))
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    pending: str | None = None
    for line in lines:
        if pending is not None and (line.startswith("- name:") or line.startswith("  - name:")):
            out.append(pending)
            pending = None
        out.append(line)
        if line.strip() == f"- name: {c.AM_RECEIVER_PAGE}":
            pending = _PAGERDUTY
        elif line.strip() == f"- name: {c.AM_RECEIVER_TICKET}":
            pending = _SLACK
    if pending is not None:
        out.append(pending)
    return header + "".join(out)


@dataclass(frozen=True)
class PrometheusParams:
    app_target: str = "127.0.0.1:8080"  # host:port of the app's /metrics
    alertmanager_target: str = "127.0.0.1:9093"
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    scheme: str = "http"
    credentials_file: str | None = None
    rule_files: tuple[str, ...] = (c.RULES_FILE_RECORDING, c.RULES_FILE_ALERTS)


def prometheus_config(p: PrometheusParams, header: str = "") -> str:
    """prometheus.yml: scrape the app, evaluate the generated rules, alert through Alertmanager.

    Exemplar storage is a command-line flag, not a config setting: run Prometheus with
    ``--enable-feature=exemplar-storage`` (``hypermind-obs stack`` does).
    """
    scrape: dict[str, Any] = {"job_name": c.PROM_JOB, "scheme": p.scheme}
    if p.credentials_file:
        scrape["authorization"] = {"type": "Bearer", "credentials_file": p.credentials_file}
    scrape["static_configs"] = [{"targets": [p.app_target]}]
    cfg = {
        "global": {"scrape_interval": p.scrape_interval, "evaluation_interval": p.evaluation_interval},
        "rule_files": list(p.rule_files),
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [p.alertmanager_target]}]}]},
        "scrape_configs": [scrape],
    }
    note = "# Run with --enable-feature=exemplar-storage: exemplars link histogram buckets to runs.\n"
    return header + note + dump(cfg)
