"""docker-compose.yml validates with Debian's docker-compose (no engine needed) and mounts exactly the
files the tests use; the configs it mounts pass Prometheus' and Alertmanager's own checkers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from hypermindlabs.generate.compose import TOKEN_SECRET
from hypermindlabs.generate.grafana_dashboards import DASHBOARDS_MOUNT
from tests.conftest import require_binary
from tests.grafana_support import (
    COMPOSE_FILE,
    DASHBOARDS_DIR,
    DATASOURCE_FILE,
    GRAFANA_INI,
    PROVISIONING_DIR,
    ROOT,
    RULES_DIR,
    rule_files,
)


def _config() -> dict:
    done = subprocess.run([require_binary("docker-compose"), "-f", str(COMPOSE_FILE), "config"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _binds(service: dict) -> dict[str, Path]:
    """container path → host path of the service's bind mounts (named volumes left out)."""
    out = {}
    for vol in service.get("volumes", []):
        source, target = (
            (vol.split(":")[0], vol.split(":")[1]) if isinstance(vol, str) else (vol["source"], vol["target"])
        )
        if source.startswith("/"):
            out[target] = Path(source)
    return out


def test_docker_compose_config_accepts_the_stack_with_health_checks_and_named_volumes():
    cfg = _config()
    services = cfg["services"]
    assert {"app", "prometheus", "alertmanager", "grafana", "backfill-export", "backfill-blocks"} <= set(services)
    for name in ("app", "prometheus", "alertmanager", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    assert set(cfg["volumes"]) >= {"hypermind-data", "prometheus-data", "grafana-data", "alertmanager-data"}
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]
    assert services["prometheus"]["depends_on"]["backfill-blocks"]["condition"] == "service_completed_successfully"
    assert "export-openmetrics" in " ".join(services["backfill-export"]["command"])
    assert "create-blocks-from openmetrics" in " ".join(services["backfill-blocks"]["command"])
    assert "hypermind-obs demo" in " ".join(services["app"]["command"])


def test_every_mounted_host_file_exists_and_is_the_one_the_tests_use():
    services = _config()["services"]
    for name, service in services.items():
        for target, source in _binds(service).items():
            assert source.exists(), f"{name} mounts missing {source} at {target}"
    grafana = _binds(services["grafana"])
    assert grafana[DASHBOARDS_MOUNT] == DASHBOARDS_DIR
    assert grafana["/etc/grafana/provisioning/datasources"] == DATASOURCE_FILE.parent
    assert grafana["/etc/grafana/provisioning/dashboards"] == PROVISIONING_DIR / "dashboards"
    assert grafana["/etc/grafana/grafana.ini"] == GRAFANA_INI
    prometheus = _binds(services["prometheus"])
    assert prometheus["/etc/prometheus/rules"] == RULES_DIR
    assert prometheus["/etc/prometheus/prometheus.yml"] == ROOT / "compose" / "prometheus.yml"
    assert (
        _binds(services["alertmanager"])["/etc/alertmanager/alertmanager.yml"] == ROOT / "compose" / "alertmanager.yml"
    )
    for name in ("prometheus", "alertmanager"):  # the token file the configs name is the secret they get
        assert services[name]["secrets"] == [{"source": "hypermind_api_token"}], name
    env = services["grafana"]["environment"]
    # Every ${VAR} the datasource file expands is set on the Grafana service.
    for var in set(re.findall(r"\$\{([A-Z_]+)\}", DATASOURCE_FILE.read_text())):
        assert env.get(var), var
    prom_cfg = yaml.safe_load((prometheus["/etc/prometheus/prometheus.yml"]).read_text())
    assert env["PROMETHEUS_SCRAPE_INTERVAL"] == prom_cfg["global"]["scrape_interval"]


def test_the_mounted_prometheus_and_alertmanager_configs_pass_promtool_and_amtool(tmp_path):
    services = _config()["services"]
    token = tmp_path / "token"
    token.write_text("t\n")
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules) if RULES_DIR.is_dir() else rules.mkdir()
    prom_cfg = _binds(services["prometheus"])["/etc/prometheus/prometheus.yml"].read_text()
    prom_cfg = prom_cfg.replace("/run/secrets/hypermind_api_token", str(token)).replace(
        "/etc/prometheus/rules", str(rules)
    )
    (tmp_path / "prometheus.yml").write_text(prom_cfg)
    done = subprocess.run([require_binary("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # promtool also checked the rule files the globs found: those of prometheus/ the acceptance test loads.
    assert rule_files(), "prometheus/rules/ holds the generated rules"
    for path in rule_files():
        assert path.name in done.stdout, path
    am_cfg = _binds(services["alertmanager"])["/etc/alertmanager/alertmanager.yml"].read_text()
    (tmp_path / "alertmanager.yml").write_text(am_cfg.replace(TOKEN_SECRET, str(token)))
    done = subprocess.run([require_binary("amtool"), "check-config", str(tmp_path / "alertmanager.yml")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
