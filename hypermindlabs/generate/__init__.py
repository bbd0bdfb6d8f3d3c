"""Generators of committed artifacts: pure functions of the conventions module, written deterministically
so CI can regenerate and diff.

- Prometheus rules and Alertmanager routing (``rules.py``, ``alertmanager.py``): :func:`prometheus_files`
  maps every generated file under ``prometheus/`` to its text; ``python -m hypermindlabs.generate``
  writes them (``make generate``).
- Grafana dashboards (``grafana_dashboards.py``, ``grafana_style.py``; ``grafana/generate.py``).
"""

from __future__ import annotations

from pathlib import Path

from hypermindlabs.generate._yaml import dump, header
from hypermindlabs.generate.alertmanager import (
    AlertmanagerParams,
    PrometheusParams,
    alertmanager_config,
    prometheus_config,
)
from hypermindlabs.generate.rules import RuleParams, rule_groups

__all__ = ["prometheus_files", "write_files", "default_params", "RULES_DIR"]

RULES_DIR = "rules"
_SOURCE = "hypermindlabs/generate (python -m hypermindlabs.generate)"


def default_params(public_url: str) -> tuple[RuleParams, AlertmanagerParams, PrometheusParams]:
    """The committed configuration: the app and both servers on their default loopback ports."""
    host_port = public_url.split("://", 1)[-1].rstrip("/")
    return (
        RuleParams(public_url=public_url),
        AlertmanagerParams(app_url=public_url),
        PrometheusParams(app_target=host_port, rule_files=tuple(f"{RULES_DIR}/{n}" for n in rule_groups(
            RuleParams(public_url=public_url)))),
    )  # fmt: skip


def prometheus_files(rules: RuleParams, am: AlertmanagerParams, prom: PrometheusParams) -> dict[str, str]:
    """Relative path → content of every file of a Prometheus + Alertmanager setup."""
    head = header(_SOURCE)
    files = {f"{RULES_DIR}/{name}": head + dump(groups) for name, groups in rule_groups(rules).items()}
    files["alertmanager.yml"] = alertmanager_config(am, head)
    files["prometheus.yml"] = prometheus_config(prom, head)
    return files


def write_files(out: Path, files: dict[str, str]) -> list[Path]:
    written = []
    for rel, text in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
