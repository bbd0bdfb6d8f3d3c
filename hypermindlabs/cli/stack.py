"""``hypermind-obs stack``: Prometheus and Alertmanager from the installed binaries, for users without Docker.

The generated files (:mod:`hypermindlabs.generate`) are written for *your* settings into
``var/stack/config`` — the app's address, ``HYPERMIND_PUBLIC_URL`` in the alert links, the API
token in a 0600 file both servers read — and the two servers run with their data under
``var/stack/``. The end-to-end test launches the servers with the same functions.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from hypermindlabs.config import Settings
from hypermindlabs.generate import RULES_DIR, prometheus_files, write_files
from hypermindlabs.generate.alertmanager import AlertmanagerParams, PrometheusParams
from hypermindlabs.generate.rules import RuleParams

__all__ = ["MissingBinary", "Server", "StackPaths", "find_binary", "prometheus_command", "alertmanager_command",
           "write_stack_config", "run_stack", "PROMETHEUS_BINARY", "ALERTMANAGER_BINARY", "APT_PACKAGES"]  # fmt: skip

log = logging.getLogger(__name__)
PROMETHEUS_BINARY = "prometheus"
ALERTMANAGER_BINARY = "prometheus-alertmanager"  # the Debian name of the alertmanager binary
APT_PACKAGES = {PROMETHEUS_BINARY: "prometheus", ALERTMANAGER_BINARY: "prometheus-alertmanager"}


class MissingBinary(RuntimeError):
    """A server binary is not installed; the message carries the install command."""


def find_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingBinary(
            f"{name} is not installed (or not on PATH). On Debian/Ubuntu: "
            f"sudo apt-get install {' '.join(APT_PACKAGES.values())}"
        )
    return path


def prometheus_command(binary: str, config: Path, data: Path, listen: str, *, extra: Sequence[str] = ()) -> list[str]:
    """The Prometheus command line: exemplar storage on (DESIGN §4), lifecycle API for reloads."""
    return [binary, f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address={listen}",
            "--enable-feature=exemplar-storage", "--web.enable-lifecycle", *extra]  # fmt: skip


def alertmanager_command(binary: str, config: Path, data: Path, listen: str, *, extra: Sequence[str] = ()) -> list[str]:
    """The Alertmanager command line, clustering off: a lone instance must not gossip on port 9094."""
    return [binary, f"--config.file={config}", f"--storage.path={data}", f"--web.listen-address={listen}",
            "--cluster.listen-address=", *extra]  # fmt: skip


class Server:
    """One child process with its log file; ``stop`` terminates it (and kills it after a grace period)."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, url: str, timeout: float = 30.0) -> None:
        """Poll ``url`` (a /-/ready endpoint) until it answers 200; raise with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback URL we built
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready at {url}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, grace: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus"

    @property
    def alertmanager_data(self) -> Path:
        return self.root / "alertmanager"

    @property
    def token_file(self) -> Path:
        return self.config / "api-token"


def write_stack_config(paths: StackPaths, rules: RuleParams, am: AlertmanagerParams, prom: PrometheusParams,
                       token: str | None = None) -> dict[str, Path]:  # fmt: skip
    """Write rules, prometheus.yml and alertmanager.yml (and the token file) under ``paths.config``."""
    paths.config.mkdir(parents=True, exist_ok=True)
    if token:
        # The token goes in a file only the user can read; the configs refer to it, never embed it.
        fd = os.open(paths.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        am = replace(am, credentials_file=str(paths.token_file))
        prom = replace(prom, credentials_file=str(paths.token_file))
    files = prometheus_files(rules, am, replace(prom, rule_files=tuple(f"{RULES_DIR}/{n}" for n in
                                                                       ("recording.rules.yml", "alerts.rules.yml"))))
    write_files(paths.config, files)
    return {"prometheus": paths.config / "prometheus.yml", "alertmanager": paths.config / "alertmanager.yml"}


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - the app URL the user gave
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def run_stack(settings: Settings, *, app_url: str | None, prometheus_listen: str, alertmanager_listen: str,
              root: Path, stop: threading.Event | None = None, out=None) -> int:  # fmt: skip
    """Run both servers until Ctrl-C (or ``stop`` is set); stop both on the way out. Returns an exit code."""
    say = out or print
    try:
        prom_bin, am_bin = find_binary(PROMETHEUS_BINARY), find_binary(ALERTMANAGER_BINARY)
    except MissingBinary as exc:
        say(f"hypermind-obs stack: {exc}")
        return 2
    app = (app_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    target = urlsplit(app)
    paths = StackPaths(root)
    try:
        rules = RuleParams(public_url=settings.public_url, slo_objective=settings.slo_objective)
    except ValueError as exc:
        say(f"hypermind-obs stack: HYPERMIND_SLO_OBJECTIVE: {exc}")
        return 2
    if not _reachable(f"{app}/healthz"):
        say(f"hypermind-obs stack: warning: no app answers at {app}/healthz yet (start it with hypermind-obs serve); "
            "Prometheus will show the target down until it does")  # fmt: skip
    cfg = write_stack_config(
        paths,
        rules,
        AlertmanagerParams(app_url=app),
        PrometheusParams(app_target=target.netloc, scheme=target.scheme or "http",
                         alertmanager_target=alertmanager_listen),
        settings.api_token,
    )  # fmt: skip
    servers: list[Server] = []
    stop = stop or threading.Event()
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    try:
        if previous is not None:
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        am = Server("alertmanager", alertmanager_command(am_bin, cfg["alertmanager"], paths.alertmanager_data,
                                                         alertmanager_listen), root / "alertmanager.log")  # fmt: skip
        servers.append(am)
        pr = Server("prometheus", prometheus_command(prom_bin, cfg["prometheus"], paths.prometheus_data,
                                                     prometheus_listen), root / "prometheus.log")  # fmt: skip
        servers.append(pr)
        am.wait_ready(f"http://{alertmanager_listen}/-/ready")
        pr.wait_ready(f"http://{prometheus_listen}/-/ready")
        say(f"Prometheus    http://{prometheus_listen}/alerts   (scraping {app}/metrics)")
        say(f"Alertmanager  http://{alertmanager_listen}/       (webhook → {app}/api/v1/alerts)")
        say(f"config in {paths.config}, data in {root}; Ctrl-C stops both")
        while not stop.wait(0.5):
            for s in servers:
                if s.proc.poll() is not None:
                    say(f"hypermind-obs stack: {s.name} exited with {s.proc.returncode}:\n{s.log_tail()}")
                    return 1
        return 0
    except RuntimeError as exc:
        say(f"hypermind-obs stack: {exc}")
        return 1
    finally:
        for s in reversed(servers):
            s.stop()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        say("hypermind-obs stack: stopped Prometheus and Alertmanager")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``hypermind-obs stack`` on the CLI's subcommands."""
    sp = sub.add_parser("stack", help="run Prometheus and Alertmanager (installed binaries) against a running app")
    sp.add_argument("--app-url", help="where the servers reach the app (default http://$HYPERMIND_HOST:$HYPERMIND_PORT)")
    sp.add_argument("--prometheus", default="127.0.0.1:9090", metavar="HOST:PORT", help="Prometheus listen address")
    sp.add_argument("--alertmanager", default="127.0.0.1:9093", metavar="HOST:PORT",
                    help="Alertmanager listen address")  # fmt: skip
    sp.add_argument("--dir", type=Path, default=Path("var") / "stack", help="config and data directory (var/stack)")
    sp.set_defaults(func=_cmd_stack)


def _cmd_stack(args: argparse.Namespace) -> int:
    return run_stack(Settings.from_env(), app_url=args.app_url, prometheus_listen=args.prometheus,
                     alertmanager_listen=args.alertmanager, root=args.dir)  # fmt: skip
