"""A leaner store (issue #10, build item 3; migration 0020): event tags once per distinct set,
``run_tags`` without rowids and without its key-led index on SQLite.

Every answer stays byte-identical: the migration of a database of the old layout, and the ingest
of new events, give the same API answers as the old layout did.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from hypermindlabs.core.filters import Filters
from hypermindlabs.core.vocabulary import ROLLUP_MEASURES
from hypermindlabs.ingest import ingest_objects
from hypermindlabs.store import EventStore
from hypermindlabs.store.schema import events, rollup_cells, tag_sets
from hypermindlabs.wiring import ROLLUPS_REVISION
from tests.conftest import FIXED_NOW_NS
from tests.test_rollups import (
    DAY,
    T0,
    build_runs,
    downgrade_schema,
    enrich,
    ingest,
    snapshot,
    to_events,
    upgrade_schema,
)

BEFORE = "0018"  # the revision 0020 revises: the old layout


def _tagged_events() -> list[dict[str, Any]]:
    """Runs with tags, steps with other tags than their run's (or none), and tags of every shape."""
    evs = to_events(build_runs(21, 40, T0, DAY))
    shapes = [{}, {"env": "prod"}, {"env": "prod", "release": "2.1"}, {"uni": "çödé ✓", "q": 'a "b" \\ c'},
              {f"k{i}": "v" * 200 for i in range(20)}]  # fmt: skip
    for i, ev in enumerate(evs):
        if ev["kind"] != "run":
            ev["tags"] = shapes[i % len(shapes)]
    return evs


def _answers(store: EventStore) -> bytes:
    """Every run's trace and the run lists (tag filters too), as the API serializes them."""
    with store.engine.connect() as conn:
        run_ids = sorted(conn.execute(sa.select(events.c.run_id).distinct()).scalars())
    out: list[Any] = [store.get_run(r) for r in run_ids]
    for f in (Filters(), Filters(tags=(("env", ("prod",)),)), Filters(tags=(("tier", ("pro", "free")),))):
        page = store.list_runs(f, limit=1000)
        out.append([page.runs, page.next_cursor])
    return orjson.dumps(out)


def _tags_column(store: EventStore) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return sorted(conn.exec_driver_sql("SELECT event_id, tags FROM events").all())


def test_the_migration_keeps_every_answer_and_the_rollups(backend, make_store) -> None:
    store = make_store(enricher=enrich)
    ingest(store, _tagged_events(), batch=97)
    answers, cells = _answers(store), snapshot(store)
    # The layout before 0020: the tags JSON on every event row.
    downgrade_schema(store, BEFORE)
    old = _tags_column(store)
    assert len(old) > 100 and {t for _, t in old} >= {"{}", '{"env":"prod"}'}
    # 0020 alone touches no rollup cell (0021's downgrade above emptied them): a cell put there stays.
    sentinel = {"part": 16, "tier": 86400, "bucket_ns": 0, "slice_id": 1, "n": 1, "sketch": b"",
                **{m: 0 for m in ROLLUP_MEASURES if m != "n"}}  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(sa.insert(rollup_cells).values(sentinel))
    upgrade_schema(store, "0020")
    assert [tuple(r) for r in snapshot(store)[0]] == [tuple(sentinel[c.name] for c in rollup_cells.columns)]
    assert ROLLUPS_REVISION != "0020"
    store = make_store(enricher=enrich)  # start-up of the upgraded product: migrates to the head
    assert store.schema_version() == store.head_version()
    assert _answers(store) == answers
    assert snapshot(store) == cells  # recomputed by later layouts (0021), the same cells
    with store.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(tag_sets.c.tags, tag_sets.c.id)).all())
        ids = dict(conn.execute(sa.select(events.c.event_id, events.c.tag_set)).all())
    assert sorted(stored) == sorted({t for _, t in old} - {"{}"})  # each distinct set once
    assert all(ids[e] == (None if t == "{}" else stored[t]) for e, t in old)
    # And back: the old layout again, the same text on every row.
    downgrade_schema(store, BEFORE)
    assert _tags_column(store) == old


def test_new_events_answer_the_same_as_migrated_ones(backend, make_store) -> None:
    # The same events through today's ingest, and through the old layout then the migration.
    evs = _tagged_events()
    a = make_store(enricher=enrich)
    ingest(a, evs, batch=97)
    b_answers = _answers(a)
    downgrade_schema(a, BEFORE)
    migrated = make_store(enricher=enrich)
    assert _answers(migrated) == b_answers
    more = to_events(build_runs(22, 5, T0 + DAY, DAY, prefix="m"))
    for ev in more:
        ev["tags"] = {"env": "prod"} if ev["kind"] != "run" else ev["tags"]
    ingest(migrated, more)  # sets stored before the migration are found, not duplicated
    with migrated.engine.connect() as conn:
        n_sets = conn.execute(sa.select(sa.func.count()).select_from(tag_sets)).scalar_one()
        texts = conn.execute(sa.select(tag_sets.c.tags)).scalars().all()
    assert n_sets == len(set(texts))
    run = migrated.get_run(more[-1]["run_id"])
    assert run is not None and all(e["tags"] == {"env": "prod"} for e in run["events"] if e["kind"] != "run")


def test_tag_set_ids_of_a_rolled_back_batch_are_never_used(backend, make_store) -> None:
    # A batch adds a new tag set, then fails (an append hook raises): the transaction rolls back,
    # and the id it saw may be given to another set. The store must not keep it.
    store = make_store()

    def fail(conn, rows, reattributed) -> None:  # noqa: ANN001
        raise RuntimeError("hook failed")

    def event(run_id: str, tags: dict[str, str]) -> dict[str, Any]:
        return {"run_id": run_id, "kind": "run", "status": "ok", "start_time": T0, "duration_ms": 5, "tags": tags}

    store.append_hooks.append(fail)
    with pytest.raises(RuntimeError):
        ingest_objects(store, [event("rolled-back", {"set": "a"})])
    store.append_hooks.remove(fail)
    ingest_objects(store, [event("b", {"set": "b"})])  # may take the id the rolled-back set had
    ingest_objects(store, [event("a", {"set": "a"})])
    assert store.get_run("a")["run"]["tags"] == {"set": "a"}
    assert store.get_run("b")["run"]["tags"] == {"set": "b"}
    assert store.get_run("rolled-back") is None


# SQLite only: PostgreSQL keeps its heap and the key-led index for its semi-joins.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_keeps_run_tags_in_their_primary_key_alone(make_store, backend) -> None:
    store = make_store()
    ingest(store, to_events(build_runs(23, 5, T0, DAY)))
    with store.engine.connect() as conn:
        sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'run_tags'").scalar_one()
        indexes = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE tbl_name = 'run_tags' AND type = 'index'")
        assert sql.rstrip().endswith("WITHOUT ROWID")
        assert [n for (n,) in indexes] == []
        # The run list's tag filter probes each walked run's own tags by that key.
        page = store.list_runs(Filters(tags=(("env", ("prod", "staging")),), to_ns=FIXED_NOW_NS), limit=3)
        assert page.runs
