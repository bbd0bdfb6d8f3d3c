"""POST /api/v1/alerts (Alertmanager webhook) and GET /api/v1/alerts, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy

import pytest

from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from tests.conftest import FIXED_NOW_NS


def _alert(fp: str = "3f2a9c1e0b7d4a55", status: str = "firing", **over) -> dict:
    a = {
        "status": status,
        "labels": {"alertname": "HypermindErrorRateRegression", "severity": "page", "job": "hypermind",
                   "project": "shop", "scenario": "refund_request", "model": "gpt-4o-mini", "baseline": "1d"},
        "annotations": {"summary": "Failure rate rose", "description": "31% of runs failed",
                        "runbook_url": "http://127.0.0.1:8080/docs/alerting#hyperminderrorrateregression",
                        "runs_url": "http://127.0.0.1:8080/runs?status=error&from=now-1h&project=shop&model=gpt-4o-mini"},
        "startsAt": "2026-01-01T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T11:00:00+01:00",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=x",
        "fingerprint": fp,
    }  # fmt: skip
    a.update(over)
    return a


def _payload(*alerts: dict, status: str = "firing") -> dict:
    return {"version": "4", "groupKey": '{}:{alertname="HypermindErrorRateRegression"}', "truncatedAlerts": 0,
            "status": status, "receiver": "hypermind-page", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093", "alerts": list(alerts)}  # fmt: skip


def test_a_firing_notification_is_stored_and_listed_with_its_labels_links_and_times(client):
    r = client.post("/api/v1/alerts", json=_payload(_alert()))
    assert r.status_code == 200 and r.get_json() == {"stored": 1}
    alerts = client.get("/api/v1/alerts").get_json()["alerts"]
    assert alerts == [{
        "fingerprint": "3f2a9c1e0b7d4a55", "status": "firing", "alertname": "HypermindErrorRateRegression",
        "severity": "page", "labels": _alert()["labels"], "annotations": _alert()["annotations"],
        "starts_at": "2026-01-01T10:00:00.123456789Z", "ends_at": None,
        "generator_url": "http://127.0.0.1:9090/graph?g0.expr=x",
        "runs_url": "/api/v1/runs?status=error&from=now-1h&project=shop&model=gpt-4o-mini",
        "receiver": "hypermind-page", "received_at": "2026-01-01T00:00:00Z",
    }]  # fmt: skip


def test_the_runs_url_of_an_alert_answers_on_the_runs_api(client):
    client.post("/api/v1/alerts", json=_payload(_alert()))
    url = client.get("/api/v1/alerts").get_json()["alerts"][0]["runs_url"]
    r = client.get(url)
    assert r.status_code == 200 and r.get_json()["filters"]["model"] == "gpt-4o-mini"


def test_resolving_keeps_one_row_per_fingerprint_in_its_latest_state(client):
    client.post("/api/v1/alerts", json=_payload(_alert(), _alert("00aa")))
    client.post("/api/v1/alerts", json=_payload(_alert(status="resolved"), status="resolved"))
    firing = client.get("/api/v1/alerts").get_json()["alerts"]
    resolved = client.get("/api/v1/alerts?state=resolved").get_json()["alerts"]
    everything = client.get("/api/v1/alerts?state=all").get_json()["alerts"]
    assert [a["fingerprint"] for a in firing] == ["00aa"]
    assert [(a["fingerprint"], a["ends_at"]) for a in resolved] == [("3f2a9c1e0b7d4a55", "2026-01-01T10:00:00Z")]
    assert sorted(a["fingerprint"] for a in everything) == ["00aa", "3f2a9c1e0b7d4a55"]


def test_a_late_retry_of_the_firing_notification_does_not_undo_the_resolution(client):
    client.post("/api/v1/alerts", json=_payload(_alert(status="resolved"), status="resolved"))
    client.post("/api/v1/alerts", json=_payload(_alert()))
    assert client.get("/api/v1/alerts?state=resolved").get_json()["alerts"][0]["status"] == "resolved"


def test_a_new_firing_of_a_resolved_alert_fires_again(client):
    client.post("/api/v1/alerts", json=_payload(_alert(status="resolved"), status="resolved"))
    client.post("/api/v1/alerts", json=_payload(_alert(startsAt="2026-01-01T12:00:00Z")))
    [a] = client.get("/api/v1/alerts").get_json()["alerts"]
    assert a["status"] == "firing" and a["starts_at"] == "2026-01-01T12:00:00Z" and a["ends_at"] is None


def test_an_alert_without_a_known_severity_is_listed_as_info(client):
    labels = {"alertname": "Watchdog"}
    client.post("/api/v1/alerts", json=_payload(_alert(labels=labels, annotations={})))
    [a] = client.get("/api/v1/alerts").get_json()["alerts"]
    assert a["severity"] == "info" and a["runs_url"] is None and a["labels"] == labels


def _key(k: str):
    return int(k) if k.isdigit() else k


def _edit(path: str) -> tuple[dict, object, object]:
    body = _payload(_alert(), _alert("bb01"))
    target = body
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[_key(k)]
    return body, target, _key(keys[-1])


def _without(path: str) -> dict:
    body, target, key = _edit(path)
    del target[key]
    return body


def _with(path: str, value) -> dict:
    body, target, key = _edit(path)
    target[key] = value
    return body


BAD = [
    ("a body that is not an object", [1, 2], "body"),
    ("a wrong payload version", _with("version", "3"), "version"),
    ("alerts that are not a list", _with("alerts", {"a": 1}), "alerts"),
    ("an alert that is not an object", _with("alerts.1", "x"), "alerts[1]"),
    ("an unknown status", _with("alerts.1.status", "pending"), "alerts[1].status"),
    ("a missing fingerprint", _without("alerts.1.fingerprint"), "alerts[1].fingerprint"),
    ("labels that are not an object", _with("alerts.1.labels", ["a"]), "alerts[1].labels"),
    ("a label value that is not a string", _with("alerts.1.labels.project", 3), "alerts[1].labels.project"),
    ("a missing alertname", _without("alerts.1.labels.alertname"), "alerts[1].labels.alertname"),
    ("an annotation that is not a string", _with("alerts.1.annotations.summary", None), "alerts[1].annotations.summary"),
    ("a startsAt that is not a time", _with("alerts.1.startsAt", "yesterday"), "alerts[1].startsAt"),
    ("a missing startsAt", _without("alerts.1.startsAt"), "alerts[1].startsAt"),
    ("an endsAt that is not a time", _with("alerts.1.endsAt", 5), "alerts[1].endsAt"),
    ("a generatorURL that is not a string", _with("alerts.1.generatorURL", {}), "alerts[1].generatorURL"),
]  # fmt: skip


@pytest.mark.parametrize("what, body, field", BAD, ids=[b[0] for b in BAD])
def test_a_bad_notification_is_refused_naming_the_field_and_nothing_of_it_is_stored(client, what, body, field):
    r = client.post("/api/v1/alerts", json=copy.deepcopy(body))
    assert r.status_code == 400, what
    assert r.get_json()["field"] == field and r.get_json()["error"]
    assert client.get("/api/v1/alerts?state=all").get_json()["alerts"] == []


def test_a_body_that_is_not_json_is_refused_naming_the_body(client):
    r = client.post("/api/v1/alerts", data=b"{not json", content_type="application/json")
    assert r.status_code == 400 and r.get_json()["field"] == "body"


@pytest.mark.parametrize("query, field", [("state=pending", "state"), ("limit=0", "limit"), ("limit=x", "limit"),
                                          ("status=firing", "status")])  # fmt: skip
def test_bad_list_parameters_are_refused_naming_the_parameter(client, query, field):
    r = client.get(f"/api/v1/alerts?{query}")
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_the_alerts_api_needs_the_bearer_token_when_one_is_set(pipeline):
    app = create_app(Settings(database_url="unused", api_token="s3cret"), pipeline=pipeline, clock=lambda: FIXED_NOW_NS)
    c = app.test_client()
    assert c.post("/api/v1/alerts", json=_payload(_alert())).status_code == 401
    assert c.get("/api/v1/alerts").status_code == 401
    ok = c.post("/api/v1/alerts", json=_payload(_alert()), headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert len(c.get("/api/v1/alerts", headers={"Authorization": "Bearer s3cret"}).get_json()["alerts"]) == 1


def test_label_values_come_back_as_the_text_they_were(client):
    hostile = '<script>alert("x")</script>\n"quoted" \\ ünïcode'
    client.post("/api/v1/alerts", json=_payload(_alert(labels={"alertname": "X", "model": hostile})))
    assert client.get("/api/v1/alerts").get_json()["alerts"][0]["labels"]["model"] == hostile


def test_every_alert_runbook_link_resolves_to_its_heading_on_the_app(client):
    from hypermindlabs.generate.rules import RuleParams, alert_rules

    page = client.get("/docs/alerting")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    for rule in alert_rules(RuleParams(public_url="http://127.0.0.1:8080")):
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert rule["annotations"]["runbook_url"].startswith("http://127.0.0.1:8080/docs/alerting#")
        assert f'id="{anchor}"' in html, f"no heading for {rule['alert']}"


@pytest.mark.parametrize("path", ["/docs/nope", "/docs/..%2Fpyproject", "/docs/ALERTING"])
def test_only_existing_docs_pages_are_served(client, path):
    assert client.get(path).status_code == 404
