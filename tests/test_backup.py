"""``hypermind-obs backup`` / ``restore`` on real databases (docs/operations.md, "Backup and restore").

- SQLite: the online backup API copies a store while another connection keeps ingesting (as a
  serving process would): the copy is one consistent snapshot (its rollups equal a rebuild from
  its own raw events, every run whole), the writer never fails, and a restore of it answers the
  API exactly as the copy does; a backup after ingest stops restores to the source's answers.
- PostgreSQL: ``pg_dump`` of the store's schema while ingesting, ``pg_restore`` into a new
  database on the shared server (other databases untouched): the same checks.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import psycopg
import sqlalchemy as sa

from hypermindlabs.cli.main import main
from hypermindlabs.config import Settings
from hypermindlabs.export.view import rebuild_on as rebuild_export
from hypermindlabs.ingest import ingest_objects
from hypermindlabs.store.schema import events, export_series
from hypermindlabs.web import create_app
from hypermindlabs.wiring import Pipeline, build_pipeline
from tests.conftest import FIXED_NOW_NS, PG_URL, pg_schema_url, postgres_available, require, require_binary
from tests.test_retention import AGGREGATES, T0, _answers, _ms
from tests.test_rollups import DAY, HOUR, build_runs, ingest, rebuild_from_scratch, snapshot, to_events


def _app(p: Pipeline):
    return create_app(Settings(database_url="unused"), pipeline=p, clock=lambda: FIXED_NOW_NS).test_client()


def _full_answers(p: Pipeline) -> dict[str, bytes]:
    client = _app(p)
    out = _answers(client)
    window = urlencode({"from": _ms(T0 - DAY), "to": _ms(FIXED_NOW_NS), "limit": "200"})
    out["runs"] = client.get("/api/v1/runs?" + window).data
    with p.store.engine.connect() as c:
        some = sorted(c.execute(sa.select(events.c.run_id).where(events.c.kind == "run")).scalars())[::37]
    for rid in some:
        out[rid] = client.get(f"/api/v1/runs/{rid}").data
    assert len(out) > len(AGGREGATES) + 3
    return out


def _consistent(p: Pipeline) -> None:
    """A copy is one snapshot: every run whole, rollups and exported series equal a rebuild."""
    store = p.store
    with store.engine.connect() as c:
        per_run = dict(c.execute(sa.select(events.c.run_id, sa.func.count()).group_by(events.c.run_id)).all())
        series = sorted(tuple(r) for r in c.execute(sa.select(export_series)))
    assert per_run and all(rid.startswith(("base", "live")) for rid in per_run)
    cells = snapshot(store)
    rebuild_from_scratch(store)
    assert snapshot(store) == cells, "the copy's rollups differ from a rebuild of its raw events"
    assert p.export is not None
    with store.transaction() as conn:
        rebuild_export(conn, p.export.caps)
    with store.engine.connect() as c:
        assert sorted(tuple(r) for r in c.execute(sa.select(export_series))) == series


class _Writer:
    """Another connection ingesting whole runs in batches, like a serving process under load."""

    def __init__(self, p: Pipeline) -> None:
        self.p, self.batches, self.errors = p, 0, []  # type: ignore[var-annotated]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop)

    def _loop(self) -> None:
        i = 0
        while not self.stop.is_set():
            evs = to_events(build_runs(500 + i, 20, T0 + 2 * DAY, DAY, prefix=f"live{i}-"), seed=i)
            try:
                result = ingest_objects(self.p.store, evs)
                if result.rejected:
                    self.errors.append(result.rejected[:2])
                self.batches += 1
            except Exception as exc:  # noqa: BLE001 - the test asserts there was none
                self.errors.append(exc)
            i += 1

    @contextmanager
    def running(self) -> Iterator[None]:
        self.thread.start()
        while self.batches < 2 and self.thread.is_alive():
            time.sleep(0.01)
        try:
            yield
        finally:
            self.stop.set()
            self.thread.join()


def test_a_sqlite_backup_taken_while_ingesting_is_one_snapshot_and_restores_to_equal_answers(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    source = build_pipeline(Settings(database_url=url))
    writer = build_pipeline(Settings(database_url=url, db_busy_timeout_ms=2_000))
    ingest(source.store, to_events(build_runs(1, 400, T0, 3 * DAY, prefix="base"), seed=1))
    base_events = source.store.count_events()
    w = _Writer(writer)
    with w.running():
        assert main(["backup", "--database-url", url, "--to", str(tmp_path / "during.db")]) == 0
    assert not w.errors, w.errors[:2]
    assert "SQLite online backup" in capsys.readouterr().out
    copy = build_pipeline(Settings(database_url=f"sqlite:///{tmp_path / 'during.db'}"))
    assert base_events < copy.store.count_events() <= source.store.count_events()
    copy_answers = _full_answers(copy)
    restored_url = f"sqlite:///{tmp_path / 'restored' / 'r.db'}"
    assert main(["restore", "--from", str(tmp_path / "during.db"), "--database-url", restored_url]) == 0
    restored = build_pipeline(Settings(database_url=restored_url))
    assert _full_answers(restored) == copy_answers
    _consistent(copy)

    # Ingest stopped: a backup now restores to exactly the source's answers.
    assert main(["backup", "--database-url", url, "--to", str(tmp_path / "after.db")]) == 0
    assert main(["backup", "--database-url", url, "--to", str(tmp_path / "after.db")]) == 2, "never overwrites"
    assert main(["restore", "--from", str(tmp_path / "after.db"), "--database-url", restored_url]) == 2, "nor this"
    for p in (copy, restored):
        p.close()
    second = f"sqlite:///{tmp_path / 'second.db'}"
    assert main(["restore", "--from", str(tmp_path / "after.db"), "--database-url", second]) == 0
    again = build_pipeline(Settings(database_url=second))
    assert _full_answers(again) == _full_answers(source)
    for p in (again, writer, source):
        p.close()


def _databases() -> set[str]:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def test_a_pg_dump_taken_while_ingesting_restores_into_a_new_database_with_equal_answers(tmp_path):
    require(postgres_available(), f"PostgreSQL at {PG_URL}")
    require_binary("pg_dump")
    require_binary("pg_restore")
    schema, newdb = f"t_{uuid.uuid4().hex[:12]}", f"hm_restore_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = pg_schema_url(schema)
    base = PG_URL.rsplit("/", 1)[0]
    restored_url = f"{base}/{newdb}?options=-csearch_path%3D{schema}"
    made: list[Pipeline] = []
    try:
        source = build_pipeline(Settings(database_url=url))
        writer = build_pipeline(Settings(database_url=url))
        made += [source, writer]
        ingest(source.store, to_events(build_runs(2, 400, T0, 3 * DAY, prefix="base"), seed=2))
        others = _databases()
        w = _Writer(writer)
        with w.running():
            assert main(["backup", "--database-url", url, "--to", str(tmp_path / "during.dump")]) == 0
        assert not w.errors, w.errors[:2]
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{newdb}"')
        assert main(["restore", "--from", str(tmp_path / "during.dump"), "--database-url", restored_url]) == 0
        restored = build_pipeline(Settings(database_url=restored_url))
        made.append(restored)
        assert 0 < restored.store.count_events() <= source.store.count_events()
        _consistent(restored)
        restored.close()

        # Ingest stopped: a fresh dump restores to the source's answers, byte for byte.
        assert main(["backup", "--database-url", url, "--to", str(tmp_path / "after.dump")]) == 0
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{newdb}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{newdb}"')
        assert main(["restore", "--from", str(tmp_path / "after.dump"), "--database-url", restored_url]) == 0
        # Restoring again onto it fails whole (one transaction) and leaves it as it was.
        assert main(["restore", "--from", str(tmp_path / "after.dump"), "--database-url", restored_url]) == 1
        again = build_pipeline(Settings(database_url=restored_url))
        made.append(again)
        assert _full_answers(again) == _full_answers(source)
        assert _databases() - {newdb} == others - {newdb}, "no other database was touched"
    finally:
        for p in made:
            p.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{newdb}" WITH (FORCE)')
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_restore_refuses_to_overwrite_an_existing_sqlite_database_or_to_read_a_non_database(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    p = build_pipeline(Settings(database_url=url))
    ingest(p.store, to_events(build_runs(3, 5, T0, HOUR, prefix="base"), seed=3))
    p.close()
    assert main(["backup", "--database-url", url, "--to", str(tmp_path / "b.db")]) == 0
    assert main(["restore", "--from", str(tmp_path / "b.db"), "--database-url", url]) == 2
    assert "exists" in capsys.readouterr().err
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"not a database" * 100)
    assert main(["restore", "--from", str(bad), "--database-url", f"sqlite:///{tmp_path / 'c.db'}"]) == 2
    assert not (tmp_path / "c.db").exists(), "nothing written from a file that is no database"
