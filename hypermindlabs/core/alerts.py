"""Alertmanager webhook payloads (version 4) → validated alert records. Pure: no I/O, no clock.

A payload is accepted whole or not at all: the first bad field raises :class:`AlertPayloadError`
naming it (``alerts[2].startsAt``), and the API answers 400 without storing anything.

    >>> body = {"version": "4", "alerts": [{"status": "firing", "fingerprint": "a1",
    ...         "labels": {"alertname": "X", "severity": "page"}, "annotations": {},
    ...         "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}
    >>> vocabulary = Severities(label="severity", known=("page", "ticket", "info"), default="info")
    >>> [(a.fingerprint, a.status, a.severity, a.ends_at_ns) for a in parse_webhook(body, vocabulary)]
    [('a1', 'firing', 'page', None)]

The severity vocabulary is passed in (the web layer passes the conventions module's names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hypermindlabs.core.errors import EventValidationError, FieldError
from hypermindlabs.core.events import parse_timestamp

__all__ = ["AlertPayloadError", "AlertRecord", "Severities", "parse_webhook", "api_runs_url", "MAX_ALERTS", "STATES"]

WEBHOOK_VERSION = "4"
MAX_ALERTS = 10_000
STATES: tuple[str, ...] = ("firing", "resolved")
_MAX_LABELS = 128
_MAX_NAME = 256
_MAX_LABEL_VALUE = 4_096
_MAX_ANNOTATION = 16_384
_MAX_FINGERPRINT = 64
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert that is still firing


class AlertPayloadError(FieldError):
    """A bad webhook payload; ``field`` is its JSON path (``alerts[2].labels.alertname``)."""


@dataclass(frozen=True)
class Severities:
    """Which label carries an alert's severity, the values the product knows, the one for the rest."""

    label: str
    known: tuple[str, ...]
    default: str


@dataclass(frozen=True)
class AlertRecord:
    fingerprint: str
    status: str
    alertname: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at_ns: int
    ends_at_ns: int | None
    generator_url: str
    receiver: str


def _strings(obj: Any, field: str, max_value: int, *, required: bool) -> dict[str, str]:
    if obj is None and not required:
        return {}
    if not isinstance(obj, Mapping):
        raise AlertPayloadError(field, "expected an object of string → string")
    if len(obj) > _MAX_LABELS:
        raise AlertPayloadError(field, f"more than {_MAX_LABELS} entries")
    out: dict[str, str] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not key or len(key) > _MAX_NAME:
            raise AlertPayloadError(field, f"names are 1–{_MAX_NAME} characters")
        if not isinstance(value, str):
            raise AlertPayloadError(f"{field}.{key}", "expected a string")
        if len(value) > max_value:
            raise AlertPayloadError(f"{field}.{key}", f"longer than {max_value} characters")
        out[key] = value
    return out


def _time(value: Any, field: str, *, zero_ok: bool) -> int | None:
    if zero_ok and (value is None or value == _GO_ZERO_TIME):
        return None
    if not isinstance(value, str):
        raise AlertPayloadError(field, "expected an RFC 3339 timestamp")
    try:
        return parse_timestamp(value, field)
    except EventValidationError as exc:
        raise AlertPayloadError(field, exc.reason) from exc


def _alert(obj: Any, i: int, receiver: str, sev: Severities) -> AlertRecord:
    at = f"alerts[{i}]"
    if not isinstance(obj, Mapping):
        raise AlertPayloadError(at, "expected an object")
    status = obj.get("status")
    if status not in STATES:
        raise AlertPayloadError(f"{at}.status", "must be firing or resolved")
    fingerprint = obj.get("fingerprint")
    if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= _MAX_FINGERPRINT:
        raise AlertPayloadError(f"{at}.fingerprint", f"expected a string of 1–{_MAX_FINGERPRINT} characters")
    labels = _strings(obj.get("labels"), f"{at}.labels", _MAX_LABEL_VALUE, required=True)
    alertname = labels.get("alertname")
    if not alertname:
        raise AlertPayloadError(f"{at}.labels.alertname", "required")
    annotations = _strings(obj.get("annotations"), f"{at}.annotations", _MAX_ANNOTATION, required=False)
    starts = _time(obj.get("startsAt"), f"{at}.startsAt", zero_ok=False)
    ends = _time(obj.get("endsAt"), f"{at}.endsAt", zero_ok=True)
    generator = obj.get("generatorURL", "")
    if not isinstance(generator, str) or len(generator) > _MAX_ANNOTATION:
        raise AlertPayloadError(f"{at}.generatorURL", "expected a string")
    severity = labels.get(sev.label, sev.default)
    return AlertRecord(
        fingerprint=fingerprint,
        status=status,
        alertname=alertname,
        severity=severity if severity in sev.known else sev.default,
        labels=labels,
        annotations=annotations,
        starts_at_ns=starts,  # type: ignore[arg-type]
        ends_at_ns=ends if status == "resolved" else None,
        generator_url=generator,
        receiver=receiver,
    )


def parse_webhook(body: Any, severities: Severities) -> list[AlertRecord]:
    """Every alert of one Alertmanager webhook notification, or :class:`AlertPayloadError`."""
    if not isinstance(body, Mapping):
        raise AlertPayloadError("body", "expected a JSON object (an Alertmanager webhook payload)")
    if body.get("version") != WEBHOOK_VERSION:
        raise AlertPayloadError("version", f'must be "{WEBHOOK_VERSION}" (Alertmanager webhook payload version)')
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise AlertPayloadError("alerts", "expected a list of alerts")
    if len(alerts) > MAX_ALERTS:
        raise AlertPayloadError("alerts", f"more than {MAX_ALERTS} alerts in one notification")
    receiver = body.get("receiver", "")
    if not isinstance(receiver, str) or len(receiver) > _MAX_NAME:
        raise AlertPayloadError("receiver", f"expected a string of at most {_MAX_NAME} characters")
    records = [_alert(a, i, receiver, severities) for i, a in enumerate(alerts)]
    # One row per fingerprint: when a notification repeats one, its last entry is its state.
    return list({r.fingerprint: r for r in records}.values())


def api_runs_url(runs_url: str | None) -> str | None:
    """The API form of an alert's ``runs_url`` annotation (CONTRACTS: page ``/runs?q`` ↔ ``/api/v1/runs?q``).

    >>> api_runs_url("http://127.0.0.1:8080/runs?status=error&from=now-1h&model=m1")
    '/api/v1/runs?status=error&from=now-1h&model=m1'
    >>> api_runs_url("https://elsewhere.example/dashboards") is None
    True
    """
    if not runs_url:
        return None
    parts = urlsplit(runs_url)
    if not parts.path.endswith("/runs"):
        return None
    return f"/api/v1/runs?{parts.query}" if parts.query else "/api/v1/runs"
