"""A batch's SQL grows with what it changes in few statements, not with a statement per value or event."""

from __future__ import annotations

from sqlalchemy import event

from hypermindlabs.config import Settings
from hypermindlabs.core.events import parse_event
from hypermindlabs.wiring import build_pipeline

T0 = 1_780_000_000_000_000_000  # 2026-05-28, ns
S = 1_000_000_000


def _batch(models: int, runs_per_model: int = 2) -> list:
    evs = []
    for m in range(models):
        for r in range(runs_per_model):
            rid = f"run-{m}-{r}"
            start = T0 + (m * runs_per_model + r) * S
            evs.append({"run_id": rid, "kind": "llm", "start_time": start, "duration_ms": 300, "model": f"model-{m}",
                        "usage": {"input_tokens": 10, "output_tokens": 2}})  # fmt: skip
            evs.append({"run_id": rid, "kind": "run", "start_time": start, "duration_ms": 900, "project": "acme",
                        "scenario": "refund", "model": f"model-{m}"})  # fmt: skip
    return [parse_event(e) for e in evs]


def _statements_on(store, table: str, batch: list) -> int:
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if table in statement:
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert not store.append(batch).rejected
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    return len(seen)


def test_a_batch_of_many_new_label_values_admits_them_in_a_few_statements_per_label(tmp_path) -> None:
    # SQLite: every label-admission statement goes through SQLAlchemy's cursor events. Before, each
    # new value cost three (read the label's active values, insert, touch): 3 × 120 models here.
    store = build_pipeline(Settings(database_url=f"sqlite:///{tmp_path}/s.db")).store
    try:
        few = _statements_on(store, "export_labels", _batch(3))
        many = _statements_on(store, "export_labels", _batch(120)[6 * 2 :])  # 117 more new models
        assert many <= few + 3, (few, many)
        assert many < 20
    finally:
        store.close()



def test_a_batch_stores_every_run_tag_and_a_tag_row_stored_meanwhile_is_an_integrity_error(store) -> None:
    # The run tags go in as one driver-level statement (store.dialect.bulk_write), like the events;
    # a unique clash must still surface as SQLAlchemy's IntegrityError, which the append redoes.
    import pytest
    from sqlalchemy import insert, select
    from sqlalchemy.exc import IntegrityError

    from hypermindlabs.store.schema import run_tags

    evs = [
        parse_event({"run_id": f"tagged-{i}", "kind": "run", "start_time": T0 + i * S, "duration_ms": 5,
                     "project": "acme", "tags": {"env": "prod", "shard": f"s{i % 7}"}})  # fmt: skip
        for i in range(1_200)
    ]
    assert store.append(evs).accepted == 1_200
    with store.engine.connect() as conn:
        stored = set(conn.execute(select(run_tags.c.run_id, run_tags.c.key, run_tags.c.value)).all())
    assert stored == {(f"tagged-{i}", k, v) for i in range(1_200) for k, v in (("env", "prod"), ("shard", f"s{i % 7}"))}
    with store.engine.begin() as conn:  # a tag row of a run whose run event is not stored
        conn.execute(insert(run_tags).values(run_id="orphan", key="env", value="prod"))
    orphan = parse_event({"run_id": "orphan", "kind": "run", "start_time": T0, "duration_ms": 5, "tags": {"env": "prod"}})
    with pytest.raises(IntegrityError):
        store.append([orphan])
