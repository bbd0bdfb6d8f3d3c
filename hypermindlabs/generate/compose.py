"""The Prometheus and Alertmanager configs of the docker-compose stack (``compose/``), from the same
generators as the committed ones under ``prometheus/`` — only the addresses and the token differ.

Inside the compose network the app is ``app:8080`` and Alertmanager ``alertmanager:9093``; the API
token is the compose secret both read. The rules are the committed files of ``prometheus/rules/``,
mounted next to the config, so the stack evaluates exactly what the tests check.

>>> "app:8080" in compose_files()["prometheus.yml"]
True
"""

from __future__ import annotations

from hypermindlabs.generate._yaml import header
from hypermindlabs.generate.alertmanager import (
    AlertmanagerParams,
    PrometheusParams,
    alertmanager_config,
    prometheus_config,
)
from hypermindlabs.generate.rules import RuleParams, rule_groups

__all__ = ["compose_files", "TOKEN_SECRET", "APP_ADDRESS", "ALERTMANAGER_ADDRESS", "RULES_SUBDIR"]

TOKEN_SECRET = "/run/secrets/hypermind_api_token"
APP_ADDRESS = "app:8080"
ALERTMANAGER_ADDRESS = "alertmanager:9093"
RULES_SUBDIR = "rules"  # beside prometheus.yml in the container: /etc/prometheus/rules
_SOURCE = "hypermindlabs/generate/compose.py (make generate)"


def compose_files() -> dict[str, str]:
    """File name under ``compose/`` → content."""
    head = header(_SOURCE)
    rules = tuple(f"{RULES_SUBDIR}/{name}" for name in rule_groups(RuleParams(public_url="http://unused")))
    prom = PrometheusParams(app_target=APP_ADDRESS, alertmanager_target=ALERTMANAGER_ADDRESS,
                            credentials_file=TOKEN_SECRET, rule_files=rules)  # fmt: skip
    am = AlertmanagerParams(app_url=f"http://{APP_ADDRESS}", credentials_file=TOKEN_SECRET)
    return {"prometheus.yml": prometheus_config(prom, head), "alertmanager.yml": alertmanager_config(am, head)}
