"""What the Grafana tests share: the files they read (docker-compose.yml mounts exactly these), a real
Prometheus on an ephemeral port, an OpenMetrics history for ``promtool tsdb create-blocks-from``, and
Grafana's variable interpolation for queries and data links.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import requests
import yaml

from hypermindlabs import conventions as c

ROOT = Path(__file__).resolve().parents[1]
# The files the tests use, and that docker-compose.yml mounts (tests/test_compose.py checks both).
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
PROVISIONING_DIR = ROOT / "grafana" / "provisioning"
DATASOURCE_FILE = PROVISIONING_DIR / "datasources" / "hypermind.yaml"
DASHBOARD_PROVIDER_FILE = PROVISIONING_DIR / "dashboards" / "hypermind.yaml"
GRAFANA_INI = PROVISIONING_DIR / "grafana.ini"
RULES_DIR = ROOT / "prometheus" / "rules"
COMPOSE_FILE = ROOT / "docker-compose.yml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    """Prometheus rule files under prometheus/ (YAML with a top-level ``groups``), when present."""
    out = []
    for path in sorted([*rules_dir.rglob("*.yml"), *rules_dir.rglob("*.yaml")]) if rules_dir.is_dir() else []:
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and "groups" in doc:
            out.append(path)
    return out


class Prometheus:
    """A real Prometheus (exemplar storage on) scraping one target, on an ephemeral port."""

    def __init__(self, binary: str, tmp: Path, target_port: int, *, scrape_s: float, rules: Sequence[Path],
                 tsdb: Path) -> None:  # fmt: skip
        self.port = free_port()
        cfg = tmp / "prometheus.yml"
        rule_lines = "".join(f"  - {p}\n" for p in rules)
        interval = f"{int(scrape_s * 1000)}ms"
        cfg.write_text(
            f"global: {{scrape_interval: {interval}, scrape_timeout: {interval}, evaluation_interval: {interval}}}\n"
            + (f"rule_files:\n{rule_lines}" if rules else "")
            + "scrape_configs:\n"
            f"  - job_name: hypermind\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        self.log = tmp / "prometheus.log"
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tsdb}", "--storage.tsdb.retention.time=60d",
             f"--web.listen-address=127.0.0.1:{self.port}", "--enable-feature=exemplar-storage"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}/api/v1"

    def api(self, path: str, params: Mapping[str, str]) -> dict:
        if path.startswith("label/"):  # label values answer GET only
            r = requests.get(f"{self.base}/{path}", params=params, timeout=30)
        else:
            r = requests.post(f"{self.base}/{path}", data=params, timeout=30)
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {r.status_code} {body}")
        return body["data"]

    def scalar(self, promql: str, at: float | None = None) -> float | None:
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        result = self.api("query", params)["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, expected: float, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.scalar(promql) == expected:
                    return
            except (requests.RequestException, AssertionError, KeyError):
                pass
            time.sleep(0.25)
        raise AssertionError(f"Prometheus never saw {promql} == {expected}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


# -- history for promtool ---------------------------------------------------------------------------
def openmetrics_history(
    run_labels: Iterable[Mapping[str, str]], times_s: Sequence[int], *, duration_s: Callable[[Mapping[str, str]], float]
) -> str:
    """Cumulative runs counter and run-duration histogram per label set at ``times_s`` (one run per
    sample time and label set), in the OpenMetrics text ``promtool tsdb create-blocks-from`` reads."""
    labelsets = [dict(sorted(ls.items())) for ls in run_labels]
    runs, dur = c.AGENT_RUNS, c.AGENT_RUN_DURATION
    out = [f"# TYPE {runs.prom_family} counter\n"]
    for ls in labelsets:
        lab = _fmt(ls)
        out.extend(f"{c.PROM_AGENT_RUNS}{{{lab}}} {i + 1} {t}\n" for i, t in enumerate(times_s))
    out.append(f"# TYPE {dur.prom_family} histogram\n# UNIT {dur.prom_family} seconds\n")
    for ls in labelsets:
        v = duration_s(ls)
        lab = _fmt(ls)
        for i, t in enumerate(times_s):
            n = i + 1
            for le in c.RUN_DURATION_BUCKETS_S:
                out.append(f'{dur.prom_bucket}{{{lab},le="{le}"}} {n if v <= le else 0} {t}\n')
            out.append(f'{dur.prom_bucket}{{{lab},le="+Inf"}} {n} {t}\n')
            out.append(f"{dur.prom_count}{{{lab}}} {n} {t}\n{dur.prom_sum}{{{lab}}} {n * v:.3f} {t}\n")
    out.append("# EOF\n")
    return "".join(out)


def _fmt(labels: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def backfill(promtool: str, history: str, tmp: Path, tsdb: Path) -> None:
    src = tmp / "history.om"
    src.write_text(history)
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(src), str(tsdb)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"promtool backfill failed: {done.stdout[-1500:]} {done.stderr[-1500:]}")


# -- Grafana's interpolation ------------------------------------------------------------------------
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::([a-z]+))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate_query(expr: str, values: Mapping[str, str]) -> str:
    """A panel query as Grafana sends it: ``$var``/``${var}`` replaced by ``values`` (regex already)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr}")
        return values[name]

    return _VAR.sub(sub, expr)


def percentencode(value: str) -> str:
    """Grafana's ``:percentencode`` for one value (encodeURIComponent, plus !'()*)."""
    return quote(value, safe="-_.~")


def interpolate_link(url: str, *, variables: Mapping[str, Sequence[str]], labels: Mapping[str, str],
                     builtins: Mapping[str, str]) -> str:  # fmt: skip
    """A data link as Grafana renders it for one series: ``${var:csv}`` joins the variable's values
    (All = every option), ``${__field.labels.x:percentencode}`` encodes the series' label, builtins
    (``__from``, ``__to``, ``hypermind_url``) as given."""

    def sub(m: re.Match[str]) -> str:
        name, fmt = m.group(1) or m.group(3), m.group(2)
        if name.startswith("__field.labels."):
            value = labels[name.removeprefix("__field.labels.")]
            return percentencode(value) if fmt == "percentencode" else value
        if name in builtins:
            return builtins[name]
        if name in variables:
            vals = list(variables[name])
            if fmt == "csv":
                return ",".join(vals)
            if fmt == "percentencode" and len(vals) == 1:
                return percentencode(vals[0])
            raise AssertionError(f"link uses ${{{name}:{fmt}}}: no well-defined run-list form")
        raise AssertionError(f"link variable {m.group(0)} is not defined")

    return _VAR.sub(sub, url)
