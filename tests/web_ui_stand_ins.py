"""Stand-ins for ``GET /api/v1/regressions`` and ``/api/v1/alerts``, registered only by the browser
tests and only while the real endpoints are not in the app (they are being built in parallel).

They answer in the CONTRACTS.md shapes with numbers derived from the real store (summary rows of
the current and baseline windows per model × scenario), so the page's rendering and drill-downs are
tested against real runs. They are not regression statistics: no test asserts their ranking.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from hypermindlabs.core.errors import QueryError
from hypermindlabs.core.events import format_timestamp
from hypermindlabs.core.filters import parse_filters
from hypermindlabs.rollups.answers import summary
from hypermindlabs.web.params import parse_metrics_query
from hypermindlabs.web.responses import error_response, json_response, store

DAY_NS = 86_400 * 10**9
MS = 10**6


def _rows(args: dict[str, list[str]], from_ns: int, to_ns: int) -> dict[tuple[str, str], dict[str, Any]]:
    q = dict(args)
    q.update({"from": [str(from_ns // MS)], "to": [str(to_ns // MS)], "group_by": ["model,scenario"], "limit": ["1000"]})
    mq = parse_metrics_query(q, now_ns=g.now_ns, timeseries=False)
    ans = summary(store(), mq)
    return {(r["group"]["model"], r["group"]["scenario"]): r for r in ans["rows"] if r["runs_url"]}


def regressions_stand_in() -> Blueprint:
    bp = Blueprint("test_regressions_stand_in", __name__, url_prefix="/api/v1")

    @bp.get("/regressions")
    def regressions() -> Response:
        args = request.args.to_dict(flat=False)
        extra = ("baseline", "baseline_from", "baseline_to", "min_runs", "metrics", "dimensions")
        try:
            f = parse_filters(args, now_ns=g.now_ns, allowed_extra=extra)
        except QueryError as exc:
            return error_response(400, exc.reason, exc.field)
        to_ns = f.to_ns if f.to_ns is not None else g.now_ns
        from_ns = f.from_ns if f.from_ns is not None else to_ns - DAY_NS
        b_from, b_to = from_ns - 7 * DAY_NS, from_ns
        filters = {k: v for k, v in args.items() if k not in ("from", "to", *extra)}
        cur, base = _rows(filters, from_ns, to_ns), _rows(filters, b_from, b_to)
        findings = []
        hours = (to_ns - from_ns) / 3.6e12
        for key, row in cur.items():
            b = base.get(key)
            if b is None or row["runs"] < 30 or b["runs"] < 30 or row["failure_rate"] <= b["failure_rate"]:
                continue
            impact = (row["failure_rate"] - b["failure_rate"]) * row["runs"] / hours
            findings.append({
                "id": hashlib.sha256(repr(key).encode()).hexdigest()[:16],
                "slice": {"model": key[0], "scenario": key[1]},
                "metric": "failure_rate",
                "baseline_value": b["failure_rate"], "current_value": row["failure_rate"],
                "change_abs": row["failure_rate"] - b["failure_rate"],
                "change_rel": row["failure_rate"] / b["failure_rate"] - 1 if b["failure_rate"] else None,
                "p_value": None, "q_value": None, "test": "stand-in",
                "baseline_n": b["runs"], "current_n": row["runs"],
                "impact": impact, "impact_unit": "extra_failed_runs_per_hour",
                "attribution": [], "folded": [],
                "runs_url": row["runs_url"] + "&status=error",
                "baseline_runs_url": b["runs_url"] + "&status=error",
            })  # fmt: skip
        findings.sort(key=lambda x: -x["impact"])
        return json_response({
            "from": format_timestamp(from_ns), "to": format_timestamp(to_ns),
            "from_ms": from_ns // MS, "to_ms": to_ns // MS,
            "baseline_from": format_timestamp(b_from), "baseline_to": format_timestamp(b_to),
            "baseline_from_ms": b_from // MS, "baseline_to_ms": b_to // MS,
            "baseline": f.extra.get("baseline", "previous"), "tests": len(cur),
            "params": {"min_runs": 30}, "findings": findings[:8],
        })  # fmt: skip

    return bp


def alerts_stand_in() -> Blueprint:
    bp = Blueprint("test_alerts_stand_in", __name__, url_prefix="/api/v1")

    @bp.get("/alerts")
    def alerts() -> Response:
        return json_response({"alerts": list(current_app.extensions.get("test.alerts", []))})

    return bp


def seed_alert(server: Any, *, alertname: str, severity: str, summary_text: str, runs_url: str,
               runbook_url: str) -> None:  # fmt: skip
    """A firing alert: through the real Alertmanager webhook when it exists, else into the stand-in."""
    import requests

    labels = {"alertname": alertname, "severity": severity}
    annotations = {"summary": summary_text, "runbook_url": runbook_url, "runs_url": runs_url}
    if "alerts" not in server.stand_ins:
        payload = {
            "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "hypermind",
            "groupLabels": {}, "commonLabels": labels, "commonAnnotations": annotations,
            "externalURL": "http://127.0.0.1:9093",
            "alerts": [{"status": "firing", "labels": labels, "annotations": annotations,
                        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": hashlib.sha256(
                            alertname.encode()).hexdigest()[:16]}],
        }  # fmt: skip
        r = requests.post(server.url + "/api/v1/alerts", json=payload, timeout=10)
        assert r.status_code == 200, r.text
        return
    server.app.extensions.setdefault("test.alerts", []).append({
        "fingerprint": hashlib.sha256(alertname.encode()).hexdigest()[:16], "status": "firing",
        "alertname": alertname, "severity": severity, "labels": labels, "annotations": annotations,
        "starts_at": "2026-01-01T00:00:00Z", "ends_at": None, "generator_url": "http://127.0.0.1:9090/graph",
        "runs_url": runs_url, "received_at": "2026-01-01T00:00:00Z",
    })  # fmt: skip
