"""Shared fixtures: a fresh store per test on SQLite and on the real PostgreSQL, app and client.

Tests that need a component that is missing skip with the reason when run by hand and fail
under CI (CI=true), so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator

import pytest

from hypermindlabs.config import Settings
from hypermindlabs.store import EventStore
from hypermindlabs.wiring import Pipeline, build_pipeline

PG_URL = os.environ.get("HYPERMIND_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FIXED_NOW_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def require(available: bool, what: str) -> None:
    """Skip by hand, fail in CI, when a real component is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} is not available")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"the {name} binary")
    return path  # type: ignore[return-value]


_pg_ok: bool | None = None


def postgres_available() -> bool:
    global _pg_ok
    if _pg_ok is None:
        import psycopg

        try:
            with psycopg.connect(PG_URL, connect_timeout=3) as conn:
                conn.execute("select 1")
            _pg_ok = True
        except psycopg.Error:
            _pg_ok = False
    return _pg_ok


def pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


def open_pipeline(url: str, **kwargs) -> Pipeline:
    """The product's pipeline on ``url``, built by the composition root as every entry point does."""
    return build_pipeline(Settings(database_url=url), **kwargs)


def _pg_schema_pipeline(schema: str, **kwargs) -> Pipeline:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return open_pipeline(pg_schema_url(schema), **kwargs)


def _pg_schema_store(schema: str, **kwargs) -> EventStore:
    return _pg_schema_pipeline(schema, **kwargs).store


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        require(postgres_available(), f"PostgreSQL at {PG_URL}")
    return request.param


@pytest.fixture
def make_pipeline(backend: str, tmp_path) -> Iterator:
    """Factory for fresh pipelines on the test's backend (several may share one database)."""
    made: list[Pipeline] = []
    schema = f"t_{uuid.uuid4().hex[:12]}"
    created = False

    def factory(**kwargs) -> Pipeline:
        nonlocal created
        if backend == "sqlite":
            p = open_pipeline(f"sqlite:///{tmp_path / 'events.db'}", **kwargs)
        elif not created:
            p = _pg_schema_pipeline(schema, **kwargs)
            created = True
        else:
            p = open_pipeline(pg_schema_url(schema), **kwargs)
        made.append(p)
        return p

    yield factory
    for p in made:
        p.close()
    if backend == "postgres" and created:
        _drop_schema(schema)


@pytest.fixture
def make_store(make_pipeline) -> Callable[..., EventStore]:
    """Factory for fresh stores (each the store of a fresh pipeline) on the test's backend."""
    return lambda **kwargs: make_pipeline(**kwargs).store


@pytest.fixture
def pipeline(make_pipeline) -> Pipeline:
    return make_pipeline()


@pytest.fixture
def store(pipeline: Pipeline) -> EventStore:
    return pipeline.store


@pytest.fixture
def app(pipeline: Pipeline):
    from hypermindlabs.web import create_app

    return create_app(Settings(database_url="unused"), pipeline=pipeline, clock=lambda: FIXED_NOW_NS)


@pytest.fixture
def client(app):
    return app.test_client()


# Browser-test fixtures (one Chromium and one demo database per session), shared by the web UI tests.
from tests.web_ui_harness import browser, demo_db, demo_server, page  # noqa: E402,F401


@pytest.fixture
def private_pg():
    """A PostgreSQL server of the test's own (tests/pg_instance.py) that it may stop and start."""
    from tests.pg_instance import PgInstance, pg_bindir

    require(pg_bindir() is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    pg = PgInstance()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    """A fresh database URL for a server process: a SQLite file, or a new schema on the shared PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
        return
    require(postgres_available(), f"PostgreSQL at {PG_URL}")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield pg_schema_url(schema)
    _drop_schema(schema)
