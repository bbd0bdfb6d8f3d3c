"""Every setting of hypermind-obs, declared once with its default; read from the environment once.

No other module reads ``os.environ``: build a :class:`Settings` at start-up and pass it in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["Settings", "ConfigError", "DEFAULT_DATABASE_URL", "parse_age"]

DEFAULT_DATABASE_URL = "sqlite:///" + str(Path("var") / "hypermind.db")


class ConfigError(ValueError):
    """A configuration mistake, reported at start-up with the setting's name."""


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> int | None:
    """``30d``, ``12h``, ``90m``, ``2w`` or plain seconds → seconds; None when it is no such age.

    >>> parse_age("30d"), parse_age("thirty")
    (2592000, None)
    """
    body, unit = (text[:-1], text[-1]) if text[-1:] in _AGE_UNITS else (text, "s")
    if not body.isascii() or not body.isdigit() or int(body) <= 0:
        return None
    return int(body) * _AGE_UNITS[unit]


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default=DEFAULT_DATABASE_URL,
        metadata={"env": "HYPERMIND_DATABASE_URL", "doc": "SQLAlchemy URL: sqlite:///path or postgresql://…"},
    )
    api_token: str | None = field(
        default=None,
        metadata={
            "env": "HYPERMIND_API_TOKEN",
            "doc": "Bearer token accepted as ingest, read and admin token at once; mandatory off loopback",
        },
    )
    ingest_token: str | None = field(
        default=None,
        metadata={
            "env": "HYPERMIND_INGEST_TOKEN",
            "doc": "Bearer token that may only write: POST /api/v1/events, /v1/traces, /api/v1/alerts",
        },
    )
    read_token: str | None = field(
        default=None,
        metadata={"env": "HYPERMIND_READ_TOKEN", "doc": "Bearer token that may only read: GET /api/v1/… and /metrics"},
    )
    admin_token: str | None = field(
        default=None,
        metadata={"env": "HYPERMIND_ADMIN_TOKEN", "doc": "Bearer token accepted everywhere (ingest, read, admin)"},
    )
    metrics_token: str | None = field(
        default=None,
        metadata={
            "env": "HYPERMIND_METRICS_TOKEN",
            "doc": "Bearer token Prometheus sends on /metrics (its authorization config); read/admin tokens work too",
        },
    )
    cors_origins: str | None = field(
        default=None,
        metadata={
            "env": "HYPERMIND_CORS_ORIGINS",
            "doc": "comma-separated origins allowed to call the API from a browser; none → no CORS headers (off)",
        },
    )
    db_busy_timeout_ms: int = field(
        default=30_000,
        metadata={
            "env": "HYPERMIND_DB_BUSY_TIMEOUT_MS",
            "doc": "SQLite: how long a write waits for another writer's lock before the request is answered 503",
        },
    )
    db_retry_after_s: int = field(
        default=5,
        metadata={
            "env": "HYPERMIND_DB_RETRY_AFTER_S",
            "doc": "Retry-After seconds sent with 503 when the database is unavailable or locked",
        },
    )
    host: str = field(default="127.0.0.1", metadata={"env": "HYPERMIND_HOST", "doc": "address the server binds"})
    port: int = field(default=8080, metadata={"env": "HYPERMIND_PORT", "doc": "port the server binds"})
    public_url: str = field(
        default="http://127.0.0.1:8080",
        metadata={
            "env": "HYPERMIND_PUBLIC_URL",
            "doc": "base URL of the web UI as users reach it: links in alerts, Grafana data links and exemplars",
        },
    )
    grafana_url: str | None = field(
        default=None, metadata={"env": "HYPERMIND_GRAFANA_URL", "doc": "Grafana base URL for embedded panels"}
    )
    otlp_endpoint: str | None = field(
        default=None,
        metadata={
            "env": "OTEL_EXPORTER_OTLP_ENDPOINT",
            "doc": "OTLP/HTTP endpoint for spans; none → spans are not exported",
        },
    )
    otlp_timeout_ms: int = field(
        default=10_000,
        metadata={"env": "OTEL_EXPORTER_OTLP_TIMEOUT", "doc": "OTLP span export timeout per batch, milliseconds"},
    )
    label_budgets: str | None = field(
        default=None,
        metadata={
            "env": "HYPERMIND_LABEL_BUDGETS",
            "doc": "Prometheus label caps, e.g. model=100,tool=500 (defaults: project=50, model=50, tool=200, "
            "scenario=100, error_class=30, error_type=30, cluster=100, provider=20)",
        },
    )
    slo_objective: float = field(
        default=0.95,
        metadata={
            "env": "HYPERMIND_SLO_OBJECTIVE",
            "doc": "run-success objective of the generated SLO burn-rate alerts (hypermind-obs stack), 0–1 exclusive",
        },
    )
    label_window_s: int = field(
        default=3600,
        metadata={
            "env": "HYPERMIND_LABEL_WINDOW_S",
            "doc": "Prometheus label caps: a budget counts the values seen within this many seconds, so values "
            "of a flood that stopped expire after it and real ones are admitted again",
        },
    )
    workers: int = field(
        default=1,
        metadata={
            "env": "HYPERMIND_WORKERS",
            "doc": "hypermind-obs serve: worker processes (1: waitress in one process; more: gunicorn)",
        },
    )
    max_batch_events: int = field(
        default=50_000, metadata={"env": "HYPERMIND_MAX_BATCH_EVENTS", "doc": "most events accepted in one POST"}
    )
    max_body_bytes: int = field(
        default=64 * 1024 * 1024, metadata={"env": "HYPERMIND_MAX_BODY_BYTES", "doc": "largest POST body accepted"}
    )
    query_timeout_ms: int = field(
        default=10_000,
        metadata={
            "env": "HYPERMIND_QUERY_TIMEOUT_MS",
            "doc": "read budget of one GET request, milliseconds: the database cuts any read past it (503)",
        },
    )
    query_max_tag_filters: int = field(
        default=20, metadata={"env": "HYPERMIND_QUERY_MAX_TAG_FILTERS", "doc": "most tag.<key> filters in one query"}
    )
    query_max_filter_values: int = field(
        default=100,
        metadata={"env": "HYPERMIND_QUERY_MAX_FILTER_VALUES", "doc": "most comma-separated values in one filter"},
    )
    query_max_points: int = field(
        default=10_000,
        metadata={"env": "HYPERMIND_QUERY_MAX_POINTS", "doc": "most points (series × steps) in one timeseries answer"},
    )

    rate_limits: str = field(
        default="auto",
        metadata={
            "env": "HYPERMIND_RATE_LIMITS",
            "doc": "auto: the HYPERMIND_RATE_LIMIT_* limits apply when any token is set (the app is reachable "
            "from other hosts), none on a loopback-only app without tokens; on: always; off: never",
        },
    )
    rate_limit_storage: str = field(
        default="memory://",
        metadata={
            "env": "HYPERMIND_RATE_LIMIT_STORAGE",
            "doc": "where rate-limit counters live: memory:// (one process) or redis://host:6379/0, shared by "
            "every worker of serve --workers N",
        },
    )
    rate_limit_key_prefix: str = field(
        default="hypermind",
        metadata={
            "env": "HYPERMIND_RATE_LIMIT_KEY_PREFIX",
            "doc": "prefix of the rate-limit keys in the storage: deployments sharing one Redis keep apart by it",
        },
    )
    rate_limit_ingest_per_token: str = field(
        default="500/second",
        metadata={
            "env": "HYPERMIND_RATE_LIMIT_INGEST_PER_TOKEN",
            "doc": "POST /api/v1/events and /v1/traces per bearer token (flask-limiter syntax, ';' between "
            "limits; off = none); over it → 429 + Retry-After",
        },
    )
    rate_limit_ingest_per_address: str = field(
        default="100/second",
        metadata={"env": "HYPERMIND_RATE_LIMIT_INGEST_PER_ADDRESS", "doc": "the same ingest limit per client address"},
    )
    rate_limit_read_per_token: str = field(
        default="200/second",
        metadata={
            "env": "HYPERMIND_RATE_LIMIT_READ_PER_TOKEN",
            "doc": "expensive reads (GET /api/v1/runs, metrics/summary, metrics/timeseries, regressions, "
            "failures/clusters) per bearer token; off = none",
        },
    )
    rate_limit_read_per_address: str = field(
        default="50/second",
        metadata={"env": "HYPERMIND_RATE_LIMIT_READ_PER_ADDRESS", "doc": "the same read limit per client address"},
    )

    otlp_project_keys: str = field(
        default="hypermind.project,service.name",
        metadata={
            "env": "HYPERMIND_OTLP_PROJECT_KEYS",
            "doc": "OTLP ingest: attribute keys giving a run's project, first present wins (span, then resource)",
        },
    )
    otlp_scenario_keys: str = field(
        default="hypermind.scenario",
        metadata={
            "env": "HYPERMIND_OTLP_SCENARIO_KEYS",
            "doc": "OTLP ingest: attribute keys giving a run's scenario, first present wins (span, then resource)",
        },
    )
    otlp_tag_keys: str = field(
        default="env=deployment.environment.name|deployment.environment,release=service.version,"
        "session=session.id|gen_ai.conversation.id",
        metadata={
            "env": "HYPERMIND_OTLP_TAG_KEYS",
            "doc": "OTLP ingest: run tags from attributes, tag=key|fallback-key,… (plus hypermind.tag.* attributes)",
        },
    )
    otlp_root_timeout_s: int = field(
        default=300,
        metadata={
            "env": "HYPERMIND_OTLP_ROOT_TIMEOUT_S",
            "doc": "OTLP ingest: seconds after a trace's last span arrived before a missing root span is given up "
            "and the run is synthesised from its children",
        },
    )
    otlp_retry_after_s: int = field(
        default=5,
        metadata={
            "env": "HYPERMIND_OTLP_RETRY_AFTER_S",
            "doc": "OTLP ingest: Retry-After seconds sent with 429/503 when the store cannot take a batch now",
        },
    )
    otlp_max_concurrent: int = field(
        default=4,
        metadata={
            "env": "HYPERMIND_OTLP_MAX_CONCURRENT",
            "doc": "OTLP ingest: exports processed at once per process; more are answered 429 with Retry-After",
        },
    )

    retention: str | None = field(
        default=None,
        metadata={
            "env": "HYPERMIND_RETENTION",
            "doc": "serve prunes the raw events of runs older than this (30d, 12h, 2w) every "
            "HYPERMIND_RETENTION_INTERVAL_S, as hypermind-obs prune does; unset: never",
        },
    )
    retention_interval_s: int = field(
        default=3600,
        metadata={"env": "HYPERMIND_RETENTION_INTERVAL_S", "doc": "seconds between the prunes serve runs"},
    )

    def __post_init__(self) -> None:
        # A token that is blank, or that HTTP would strip from the header, protects nothing: refuse
        # it at start-up instead of letting it count as "a token is set" for a public bind.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_token") and value is not None and (
                not value.strip() or value != value.strip() or not value.isprintable()
            ):
                raise ConfigError(
                    f"{f.metadata['env']} is blank or has surrounding whitespace or control characters; "
                    "set a printable token (e.g. from `openssl rand -hex 32`) or leave it unset"
                )
            if f.name.startswith("query_") and value < 1:
                raise ConfigError(f"{f.metadata['env']}: must be at least 1, got {value}")
            if f.name.startswith("rate_limit_") and "_per_" in f.name:
                rate_limit_value(value, f.metadata["env"])
        if self.rate_limits not in ("auto", "on", "off"):
            raise ConfigError(f"HYPERMIND_RATE_LIMITS: expected auto, on or off, got {self.rate_limits!r}")
        if self.retention is not None and parse_age(self.retention) is None:
            raise ConfigError(f"HYPERMIND_RETENTION: expected an age such as 30d, 12h or 2w, got {self.retention!r}")
        if self.retention_interval_s < 1:
            raise ConfigError(f"HYPERMIND_RETENTION_INTERVAL_S: must be at least 1, got {self.retention_interval_s}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            if f.type in ("int", int):
                try:
                    values[f.name] = int(raw)
                except ValueError as exc:
                    raise ConfigError(f"{f.metadata['env']}: expected an integer, got {raw!r}") from exc
            elif f.type in ("float", float):
                try:
                    values[f.name] = float(raw)
                except ValueError as exc:
                    raise ConfigError(f"{f.metadata['env']}: expected a number, got {raw!r}") from exc
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def any_token(self) -> bool:
        """Whether any bearer token is configured (the app may then be bound beyond loopback)."""
        return any(getattr(self, f.name) is not None for f in fields(self)
                   if f.name.endswith("_token") and not f.name.startswith("rate_limit_"))  # fmt: skip

    def rate_limits_active(self) -> bool:
        """Whether the HYPERMIND_RATE_LIMIT_* limits are installed (see ``rate_limits``)."""
        return self.rate_limits == "on" or (self.rate_limits == "auto" and self.any_token())

    def describe(self) -> list[tuple[str, str, str]]:
        """(environment variable, default, doc) for every setting: the docs table."""
        return [(f.metadata["env"], repr(f.default), f.metadata["doc"]) for f in fields(self)]


def rate_limit_value(value: str, env: str) -> str | None:
    """A rate limit setting as flask-limiter reads it ('50/second;2000/minute'); None when off."""
    if value.strip().lower() in ("", "off", "none", "0"):
        return None
    from limits import parse_many

    try:
        items = parse_many(value)
    except ValueError as exc:
        raise ConfigError(f"{env}: not a rate limit like '50/second;2000/minute' or off: {value!r}") from exc
    if not items or any(i.amount < 1 for i in items):
        raise ConfigError(f"{env}: every limit needs an amount of at least 1, got {value!r}")
    return value


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a bind address or a client address) is this machine's loopback."""
    import ipaddress

    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
