"""The OpenAPI document describes exactly the routes the app serves, and schemathesis finds no
server error and no answer outside its schema on the live app, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from hypermindlabs.config import Settings
from hypermindlabs.web import create_app
from tests.conftest import require


def _routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((method.lower(), path))
    return out


def test_the_openapi_document_lists_exactly_the_apps_routes_and_methods(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert described == _routes(app)


def test_every_path_parameter_of_a_route_is_described(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{([a-z_]+)}", path))
        for op in ops.values():
            assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == names, path
            assert "200" in op["responses"] or "207" in op["responses"], path


try:
    import schemathesis
except ImportError:  # the test extra installs it; by hand the test skips, in CI it fails
    schemathesis = None

CASES: dict[str, int] = {}


@pytest.fixture
def web_schema(pipeline, backend):
    require(schemathesis is not None, "schemathesis (the test extra)")
    app = create_app(Settings(database_url="unused"), pipeline=pipeline)
    CASES.setdefault(backend, 0)
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app).include(path_regex="^/api/")


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(web_schema, backend):
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks as oc

    # Zero server errors, every answer in its schema, with a described status and content type.
    # (Not "positive data accepted": a schema-valid body can still be a bad event, answered 400.)
    CHECKS = [not_a_server_error, oc.response_schema_conformance, oc.status_code_conformance,
              oc.content_type_conformance]  # fmt: skip
    operations = [r.ok() for r in web_schema.get_all_operations()]
    assert len(operations) >= 10
    failures: dict[str, str] = {}
    for op in operations:

        @given(case=op.as_strategy())
        @hsettings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            CASES[backend] += 1
            case.call_and_validate(checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then fail once
            failures[op.label] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
    print(f"schemathesis on {backend}: {len(operations)} operations, {CASES[backend]} cases, no failure")
